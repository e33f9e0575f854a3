"""python -m pgweave.serve: the model server without the CLI's other dependencies."""

import argparse

from . import run

parser = argparse.ArgumentParser(prog="python -m pgweave.serve", description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=11434)
parser.add_argument("--model-dir", action="append", default=[],
                    help="sentence-transformers directory to serve, PATH or NAME=PATH (repeatable)")
parser.add_argument("--generate-model-dir", action="append", default=[],
                    help="transformers causal-LM directory to serve for generation, PATH or NAME=PATH")
parser.add_argument("--log-level", default="warning")
args = parser.parse_args()
run(args.host, args.port, args.model_dir, args.generate_model_dir, args.log_level)
