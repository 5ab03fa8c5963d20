"""Run the serac server on tiny models (for tests that need a separate process, e.g. to SIGKILL it).

    python tests/server/serve_tiny.py --model-dir DIR --store FILE_OR_POSTGRES_URL --port PORT

The tiny model is created in DIR if missing. API keys come from SERAC_API_KEYS, as for `serac serve`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `tests.*`


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--store", required=True)  # text: a Path would merge a URL's "//"
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args()

    import uvicorn

    from serac.server import KeyRing, ServerSettings, create_app
    from tests.server.tiny import build_tiny_editor, ensure_tiny_model

    editor = build_tiny_editor(ensure_tiny_model(args.model_dir), args.store)
    app = create_app(editor, ServerSettings(keys=KeyRing.from_sources()))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
