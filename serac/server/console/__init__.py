"""The web console's files (``static/``): one HTML page, its script and its stylesheet, served by
the package itself at ``/ui`` so the console works offline; the page talks to the JSON API only."""
