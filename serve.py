"""Start the app: `python serve.py [Streamlit's options]`, the container's start command.

The same as `streamlit run app.py [options]`, except that the labs' modules are imported before the server
listens, so the first visitor of a server that has just started does not wait seconds for them.
"""

import sys
from pathlib import Path

from ui.warm_up import import_lab_modules


def main() -> int:
    import_lab_modules()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(Path(__file__).with_name("app.py")), *sys.argv[1:]]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
