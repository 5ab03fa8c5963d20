from serac.tasks.cli import app

app()
