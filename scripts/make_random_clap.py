"""Build a full-size random-weight CLAP folder (exact laion/larger_clap_general architecture
and preprocessing, 193,913,882 parameters) for trying musicsearch offline.

    python scripts/make_random_clap.py OUT [--size full|tiny] [--seed 0]

Random weights embed every prompt alike, so use it with --no-model-check.
"""

import argparse

from musicsearch.randmodel import build_random_clap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--size", choices=["full", "tiny"], default="full")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    folder = build_random_clap(args.out, args.size, args.seed)
    from transformers import ClapModel

    n = sum(p.numel() for p in ClapModel.from_pretrained(folder).parameters())
    print(f"wrote {folder} ({n:,} parameters)")


if __name__ == "__main__":
    main()
