"""Build the embedded demo's synthetic corpus without training (``main.py --config config/demo.conf`` builds it
on first run too).

    python demo.py [CONFIG]      # default config/demo.conf
"""

from __future__ import annotations

import argparse
import sys

from antispoof.config import read_json_config
from antispoof.demo import ensure_demo_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", nargs="?", default="config/demo.conf", help="the demo config (JSON)")
    args = parser.parse_args(argv)
    ensure_demo_corpus(read_json_config(args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
