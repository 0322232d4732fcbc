"""The ``analyze`` command: the rank analysis of a model's layers at one random input, which layers
leak their input to R-GAP and whether it recovers the input (:mod:`benchmark.apps.analysis` and
:mod:`benchmark.attacks.components.rank` compute it; this checks the input shape and prints a table or JSON).
"""

from __future__ import annotations

import argparse
import json

from benchmark.cli.arguments import SEED, whole
from benchmark.core.errors import LeakBenchError
from benchmark.core.tables import format_table


def add_analyze_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a registered model (e.g. cnn6, cnn6d, fcn3, lenet_zhu)")
    p.add_argument("--input-shape", default="3,32,32", help="C,H,W of one input (default 3,32,32)")
    p.add_argument("--num-classes", type=whole(2), default=10, help="K >= 2; 2 gives a one-logit head (default 10)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the model init and the random input (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args: argparse.Namespace) -> int:
    from benchmark.apps.analysis import analyze_model
    from benchmark.attacks.components.rank import recoverable_by_rgap

    try:
        shape = tuple(int(part) for part in args.input_shape.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or shape[1] != shape[2] or min(shape) < 1:
        raise LeakBenchError(
            f"--input-shape '{args.input_shape}' is not C,H,W with H = W (square images); give e.g. 3,32,32"
        )
    rows = analyze_model(args.model, shape, args.num_classes, seed=args.seed)
    recoverable = recoverable_by_rgap(rows)
    if args.json:
        print(
            json.dumps(
                {
                    "model": args.model,
                    "input_shape": list(shape),
                    "num_classes": args.num_classes,
                    "seed": args.seed,
                    "layers": [row.as_dict() for row in rows],
                    "rgap_recovers_input": recoverable,
                },
                indent=2,
            )
        )
        return 0
    table = [row.as_dict() | {"input": "x".join(map(str, row.input_shape))} for row in rows]
    print(
        format_table(
            table,
            (
                "layer",
                "kind",
                "input",
                "unknowns",
                "weight_constraints",
                "gradient_constraints",
                "virtual_constraints",
                "rank",
                "deficiency",
                "ra_i",
                "verdict",
            ),
        )
    )
    print(
        f"\nR-GAP recovers the input: {'yes' if recoverable else 'no'} (rank analysis at one random "
        f"{args.input_shape} input, seed {args.seed}; RA-I = deficiency - virtual constraints)"
    )
    return 0
