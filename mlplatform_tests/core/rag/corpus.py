"""A small product-manual corpus the retrieval tests write, with labelled questions whose answers it holds."""

import random
from datetime import date
from pathlib import Path

import yaml

PRODUCTS = ["zephyr kettle", "orion lamp", "nimbus router", "atlas blender", "vega heater", "lyra speaker",
            "titan drill", "nova toaster", "echo camera", "pulse watch", "quartz scale", "helix fan",
            "ember grill", "polar fridge", "sonic brush", "terra mower"]
COLOURS = ["red", "blue", "green", "black", "white", "silver", "orange", "purple"]
FILLER = [
    "Keep this manual for later reference.",
    "Our support team answers questions on working days.",
    "Read every safety notice before first use.",
    "The product complies with the applicable regulations.",
    "Packaging can be recycled with household paper.",
    "Register the product online to receive updates.",
]


def facts(index: int, name: str) -> dict[str, str]:
    return {"warranty": f"{index % 5 + 1} years", "shipping": f"{index % 7 + 2} working days",
            "colour": COLOURS[index % len(COLOURS)], "battery": f"{10 + index * 3} hours",
            "reset": f"code {name.split()[0].upper()}-{100 + index * 7}"}


def write_corpus(folder: Path, seed: int = 0) -> tuple[list[dict], Path]:
    """Write one Markdown manual per product under ``folder/manuals`` and return the labelled queries (id,
    question, kind, documents, expect) and the folder."""
    rng = random.Random(seed)
    root = folder / "manuals"
    root.mkdir(parents=True, exist_ok=True)
    queries = []
    for i, name in enumerate(PRODUCTS):
        f = facts(i, name)
        slug = name.replace(" ", "_")
        title = name.title()

        def filler(n: int) -> str:
            return " ".join(rng.sample(FILLER, n))

        text = f"""---
title: {title} manual
date: {date(2024, 1 + i % 12, 1 + i).isoformat()}
---
# {title}

## Overview

The {title} comes in {f['colour']} only. {filler(2)} The {name} battery lasts {f['battery']} on a full charge.

## Warranty

The warranty of the {title} covers {f['warranty']} from the date of purchase. {filler(2)} Damage from misuse is \
not covered by the guarantee.

## Shipping

Orders of the {title} are delivered within {f['shipping']}. {filler(2)} Delivery is free above fifty euros.

## Troubleshooting

If the {name} stops responding, hold the power button and enter the reset {f['reset']}. {filler(2)} Contact \
support when the reset does not help.
"""
        (root / f"{slug}.md").write_text(text)
        doc = f"{slug}.md"
        queries += [
            {"id": f"{slug}-warranty", "question": f"How long is the {name} guaranteed?", "kind": "answerable",
             "documents": [doc], "expect": [f["warranty"]]},
            {"id": f"{slug}-shipping", "question": f"When will my {name} order arrive?", "kind": "answerable",
             "documents": [doc], "expect": [f["shipping"]]},
            {"id": f"{slug}-battery", "question": f"What is the battery life of the {name}?", "kind": "answerable",
             "documents": [doc], "expect": [f["battery"]]},
            {"id": f"{slug}-reset", "question": f"The {name} froze, how do I reset it?", "kind": "answerable",
             "documents": [doc], "expect": [f["reset"]]},
        ]
    return queries, root


def write_queries(path: Path, queries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump(queries, sort_keys=False))
    return path
