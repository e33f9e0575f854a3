"""python -m pgweave.serve: the model server without the CLI's other dependencies."""

import argparse

from . import run
from .models import RUNTIMES

parser = argparse.ArgumentParser(prog="python -m pgweave.serve", description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=11434)
parser.add_argument("--model-dir", action="append", default=[],
                    help="sentence-transformers directory to serve, PATH or NAME=PATH (repeatable)")
parser.add_argument("--generate-model-dir", action="append", default=[],
                    help="transformers causal-LM directory to serve for generation, PATH or NAME=PATH")
parser.add_argument("--runtime", default=None, choices=RUNTIMES,
                    help="embedding runtime (default $PGWEAVE_RUNTIME or auto): auto = bf16 where the CPU multiplies it faster than fp32, else fp32; int8 changes vectors")
parser.add_argument("--models-home", default=None,
                    help="folder of pulled models (default $PGWEAVE_MODELS or ~/.cache/pgweave/models)")
parser.add_argument("--log-level", default="warning")
args = parser.parse_args()
run(args.host, args.port, args.model_dir, args.generate_model_dir, args.log_level, args.runtime, args.models_home)
