#!/usr/bin/env python
"""Train or distill a classifier: ``tools/train_net.py --config FILE [--resume] [KEY VALUE ...]``.

See ``kdzoo.engine.main`` for the flags; ``--help`` lists them.
"""

from kdzoo.engine import main

if __name__ == "__main__":
    main()
