#!/usr/bin/env python
"""Export the student of a kdzoo checkpoint as a torchvision or Detectron2 backbone (the same
command line as ``kdzoo-export``; see ``kdzoo.checkpoint.export`` or ``--help``).

    tools/export_backbone.py --input output/run/model_final.pth --output student.pth
    tools/export_backbone.py --input output/run/model_final.pth --output student_d2.pkl \\
        --format detectron2 [--detectron2-base DETECTRON2_CONFIG]
"""

from kdzoo.checkpoint.export import main

if __name__ == "__main__":
    main()
