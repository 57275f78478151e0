"""``interplab masks extract``: the masks of a published sparse checkpoint, written in the folder
layout of ``masks prune`` (``<label>/layer<L>-<component>.pt`` plus ``pruning_report.json``) so
every mask command reads them.

The checkpoint is read from its safetensors files (one, sharded with an index, or several) in one of
the formats of :mod:`interplab.masks.checkpoint_formats`. Every block weight is decoded one at a
time; results are staged and renamed into place only when all of them decoded.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from interplab.common.atomic import save_tensor, staged_folder, write_json, write_text
from interplab.common.errors import InterplabError
from interplab.common.markdown_html import markdown_table
from interplab.common.output import output_dir
from interplab.masks import checkpoint_formats as cf
from interplab.masks.mask_configs import ExtractConfig
from interplab.masks.mask_set import REPORT_JSON, REPORT_MD, report_summary
from interplab.masks.nm import STANDARD_PATTERNS, complies

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ExtractedMatrix:
    """One extracted matrix (the ``matrices`` entry of the report)."""

    layer: int
    component: str
    shape: list[int]
    sparsity: float
    relative_output_error: float | None
    seconds: float
    file: str
    format: str
    stored_zeros: int


@dataclasses.dataclass
class ExtractResult:
    """What ``extract_masks`` wrote."""

    out_dir: Path
    label: str
    format: str
    structure: str
    matrices: list[ExtractedMatrix]
    bytes_read: int
    seconds: float
    report: dict[str, Any]

    @property
    def overall_sparsity(self) -> float:
        return float(self.report["summary"]["overall_sparsity"])


def _label(config: ExtractConfig) -> str:
    label = config.label or Path(config.model_dir).resolve().name
    if not label or "/" in label or label.startswith("."):
        raise InterplabError(f"--label {label!r}: expected a plain folder name")
    return label


def _structure(sparse: cf.SparsityConfig, masks_nm: dict[str, bool]) -> str:
    if sparse.sparsity_structure and sparse.sparsity_structure != "unstructured":
        return str(sparse.sparsity_structure)
    if sparse.format == cf.SPARSE_24_BITMASK:
        return "2:4"
    for n, m in STANDARD_PATTERNS:
        if masks_nm.get(f"{n}:{m}"):
            return f"{n}:{m}"
    return "unstructured"


def extract_masks(config: ExtractConfig) -> ExtractResult:
    """Decode every block weight of ``config.model_dir`` and write ``config.out/<label>/``."""
    t_start = time.perf_counter()
    folder = Path(config.model_dir)
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise InterplabError(f"--out {out}: exists and is not a folder")
    model_config = cf.read_config(folder) if folder.is_dir() else {}
    sparse = cf.sparsity_config(model_config, str(folder / "config.json"))
    names = cf.safetensors_index(folder)
    shapes = cf.tensor_shapes(names)
    entries = cf.find_block_matrices(names, shapes, sparse.format)
    if not entries:
        raise InterplabError(f"{folder}: no 2-D weights inside transformer blocks (…layers.<i>.…, …h.<i>.…)")
    label = _label(config)
    model_type = str(model_config.get("model_type", ""))
    transpose = model_type in cf.CONV1D_MODEL_TYPES
    arguments = {"model_dir": str(folder), "out": str(out), "label": label}

    matrices: list[ExtractedMatrix] = []
    nm_ok = {f"{n}:{m}": True for n, m in STANDARD_PATTERNS}
    bytes_read = 0
    with staged_folder(out, label) as staging, output_dir(staging, "masks extract", arguments) as od:
        with od.timed("decode"):
            for entry, decoded in cf.iter_matrices(entries, names, transpose):
                t0 = time.perf_counter()
                name = f"layer{entry.layer}-{entry.component}.pt"
                save_tensor(od.file(name), decoded.weight)
                kept = decoded.mask.numpy()
                for n, m in STANDARD_PATTERNS:
                    key = f"{n}:{m}"
                    nm_ok[key] = nm_ok[key] and complies(kept, n, m)
                bytes_read += decoded.bytes_read
                matrices.append(
                    ExtractedMatrix(
                        layer=entry.layer,
                        component=entry.component,
                        shape=list(decoded.weight.shape),
                        sparsity=float(1.0 - kept.mean()),
                        relative_output_error=None,
                        seconds=round(time.perf_counter() - t0, 6),
                        file=name,
                        format=entry.format,
                        stored_zeros=decoded.stored_zeros,
                    )
                )
        structure = _structure(sparse, nm_ok)
        report = build_report(
            folder, model_config, sparse, label, structure, entries, matrices, names, bytes_read
        )
        report["summary"]["total_seconds"] = time.perf_counter() - t_start
        write_json(od.file(REPORT_JSON), report)
        write_text(od.file(REPORT_MD), report_markdown(report))
    final = out / label
    log.info("wrote %s", final)
    return ExtractResult(
        out_dir=final,
        label=label,
        format=sparse.format,
        structure=structure,
        matrices=matrices,
        bytes_read=bytes_read,
        seconds=time.perf_counter() - t_start,
        report=report,
    )


def build_report(
    folder: Path,
    model_config: dict[str, Any],
    sparse: cf.SparsityConfig,
    label: str,
    structure: str,
    entries: list[cf.BlockMatrix],
    matrices: list[ExtractedMatrix],
    names: dict[str, Path],
    bytes_read: int,
) -> dict[str, Any]:
    """``pruning_report.json`` with the keys of ``masks prune`` (no calibration, no errors)."""
    summary = report_summary(matrices, measured=False, total_seconds=None)
    architectures = model_config.get("architectures") or []
    architecture = architectures[0] if architectures else None
    return {
        "command": "masks extract",
        "model": {
            "name": folder.name,
            "source": str(folder.resolve()),
            "architecture": architecture,
            "is_causal": bool(architecture and architecture.endswith("ForCausalLM")),
            "block_path": entries[0].block_path,
            "n_blocks": len({e.layer for e in entries}),
        },
        "method": label,
        "structure": structure,
        "sparsity": sparse.global_sparsity
        if sparse.global_sparsity is not None
        else summary["overall_sparsity"],
        "checkpoint": {
            "format": sparse.format,
            "sparsity_config": dataclasses.asdict(sparse),
            "files": sorted({p.name for p in names.values()}),
            "bytes_read": bytes_read,
            "transposed_conv1d": model_config.get("model_type") in cf.CONV1D_MODEL_TYPES,
        },
        "calibration": None,
        "matrices": [dataclasses.asdict(m) for m in matrices],
        "summary": summary,
        "quality": None,
    }


def report_markdown(report: dict[str, Any]) -> str:
    """Short human-readable summary of an extraction."""
    ckpt, summary = report["checkpoint"], report["summary"]
    lines = [
        f"# Masks extracted from {report['model']['name']} ({report['method']})",
        "",
        f"- source: `{report['model']['source']}` ({report['model']['architecture']})",
        f"- format: {ckpt['format']}, structure {report['structure']}, {summary['n_matrices']} matrices, "
        f"overall sparsity {summary['overall_sparsity']:.4f}",
        f"- read {ckpt['bytes_read'] / 1e6:.1f} MB from {', '.join(ckpt['files'])}",
        "",
        *markdown_table(
            ("layer", "component", "shape", "format", "sparsity", "stored zeros"),
            (
                (
                    m["layer"],
                    f"`{m['component']}`",
                    f"{m['shape'][0]}×{m['shape'][1]}",
                    m["format"],
                    f"{m['sparsity']:.4f}",
                    m["stored_zeros"],
                )
                for m in report["matrices"]
            ),
            align="rlllrr",
        ),
    ]
    return "\n".join(lines) + "\n"
