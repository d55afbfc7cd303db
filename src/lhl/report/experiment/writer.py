"""``lhl report DIR``: write an experiment's report directory.

Files (default ``DIR/report/``):

* ``report.md`` — every table, with the figures referenced as the PNG files beside it;
* ``report.html`` — one self-contained page: the same tables, every figure embedded as a base64
  PNG data URI; no JavaScript, nothing fetched from the network (rendered with Jinja2 from
  ``templates/report.html.j2``);
* ``table.tex`` (booktabs) and ``table.csv`` (numbers unformatted; one row per configuration and
  order, plus ``all orders`` rows);
* ``<benchmark>-<order>-{curves,phase-delta,heatmap,forgetting,losses,qualitative}.png``.
"""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lhl.report.experiment import figures, paper_table
from lhl.report.experiment.collect import Experiment, Section, Stat, collect_experiment
from lhl.report.experiment.qualitative import qualitative_grid
from lhl.report.tables import NA, markdown_table
from lhl.version import __version__

__all__ = ["ReportFiles", "write_report", "Figure", "Block"]


#: The endings of the figure files a report writes (and removes when an earlier report left them).
FIGURE_SUFFIXES = tuple(f"-{kind}.png" for kind in ("curves", "phase-delta", "heatmap", "forgetting", "losses",
                                                    "qualitative"))


@dataclass
class Figure:
    """A PNG written beside ``report.md`` and embedded in ``report.html``."""

    name: str
    title: str
    png: bytes
    caption: str = ""

    @property
    def uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class Block:
    """A titled table (cells already formatted; ``bold`` marks best cells) with notes."""

    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    caption: str = ""
    #: (row, column) of cells shown in bold.
    bold: set[tuple[int, int]] = field(default_factory=set)

    def markdown(self, level: int) -> str:
        rows = [[f"**{c}**" if (i, j) in self.bold and c else c for j, c in enumerate(r)]
                for i, r in enumerate(self.rows)]
        parts = [f"{'#' * level} {self.title}", ""]
        if self.caption:
            parts += [self.caption, ""]
        parts.append(markdown_table(self.header, rows))
        if self.notes:
            parts += [""] + [f"- {n}." for n in self.notes]
        return "\n".join(parts)


@dataclass
class SectionPage:
    section: Section
    title: str
    table: Block
    blocks: list[Block]
    figures: list[Figure]
    notes: list[str]


@dataclass
class ReportFiles:
    """What :func:`write_report` wrote."""

    directory: Path
    markdown: Path
    html: Path
    latex: Path
    csv: Path
    figures: list[Path]
    experiment: Experiment


def _paper_block(table) -> Block:
    marker = "\x00"
    rows = paper_table.row_cells(table, lambda s: marker + s if s else s)
    bold = {(i, j) for i, r in enumerate(rows) for j, c in enumerate(r) if c.startswith(marker)}
    rows = [[c.lstrip(marker) for c in r] for r in rows]
    return Block(title=table.title, header=paper_table.header_cells(table), rows=rows, notes=list(table.notes),
                 bold=bold)


def _fmt(s: Stat | None, decimals: int = 2) -> str:
    if s is None:
        return ""
    return paper_table.format_stat(s, decimals)


def _phase_blocks(section: Section) -> list[Block]:
    phases = [f"after {i} ({t})" for i, t in enumerate(section.order, start=1)]
    base = section.table.baseline_label
    delta = Block(title=f"Δ vs {base} % after each phase", header=["method", *phases],
                  rows=[[label, *(_fmt(s) for s in section.phase_delta[label])] for label in section.labels],
                  caption=f"Eq. 11 over the tasks seen so far, against {base}'s result after the same phase (per "
                          f"seed, then mean ± std).")
    rank = Block(title="MR after each phase", header=["method", *phases],
                 rows=[[label, *(_fmt(s) for s in section.phase_rank[label])] for label in section.labels],
                 caption="Mean rank over the tasks seen so far (per seed over the seeds the rows share, then mean).")
    return [delta, rank]


def _forgetting_block(section: Section) -> Block | None:
    labels = [label for label in section.labels if section.forgetting.get(label)]
    if not labels:
        return None
    keys = [*section.order[:-1], "average"]
    header = ["method"] + [f"{k} {what}" for k in keys for what in ("forgetting %", "BWT %")]
    rows = []
    for label in labels:
        cells = [label]
        for key in keys:
            for data in (section.forgetting[label], section.bwt[label]):
                s = data.get(key)
                cells.append(_fmt(s) if s is not None else NA)
        rows.append(cells)
    return Block(title="Forgetting and backward transfer", header=header, rows=rows,
                 caption="Per task learned before the last phase (lhl.metrics.summary): forgetting = mean over the "
                         "task's metrics of σ·(best earlier − final)/|best| (positive = forgot); BWT = mean of "
                         "σ·(final − right after learning)/|right after learning| (negative = forgot); % , mean ± std "
                         "over seeds; average = mean over tasks; n/a = undefined (zero reference).")


def _section_page(section: Section, samples: int) -> SectionPage:
    slug = section.slug
    figs: list[Figure] = []
    notes = list(section.notes)
    figs.append(Figure(f"{slug}-curves.png", "Main metric after each phase", figures.phase_curves(section),
                       "Each task's main metric (the first of its metrics) after every phase, mean ± std over "
                       "seeds; joint is a dashed level (one phase)."))
    figs.append(Figure(f"{slug}-phase-delta.png", "Δ and MR after each phase", figures.phase_delta(section)))
    heat = figures.heat_maps(section)
    if heat is not None:
        figs.append(Figure(f"{slug}-heatmap.png", "Performance matrices", heat,
                           "Cell (after phase t, task j): mean over j's metrics of σ·(E_t,j − E_j,j)/|E_j,j| in %, "
                           "the change since right after learning j (positive = better); mean over seeds."))
    forget = figures.forgetting_bars(section)
    if forget is not None:
        figs.append(Figure(f"{slug}-forgetting.png", "Forgetting and backward transfer", forget))
    first = section.first_seed_runs()
    losses = figures.loss_curves(section, first)
    if losses is not None:
        figs.append(Figure(f"{slug}-losses.png", "Training losses", losses,
                           "Mean of each loss term over every epoch (events.jsonl epoch_end), one run per row."))
    if samples > 0:
        qualitative = qualitative_grid(section, samples)
        notes += qualitative.notes
        if qualitative.png is not None:
            figs.append(Figure(f"{slug}-qualitative.png", "Qualitative results", qualitative.png,
                               "Test images, ground truth and each row's final prediction; segmentation with a "
                               "fixed palette, depth with viridis over the ground truth's range, normals as RGB "
                               "(n + 1)/2, other tasks with magma (first channel); invalid pixels black."))
    blocks = _phase_blocks(section)
    forgetting_block = _forgetting_block(section)
    if forgetting_block is not None:
        blocks.append(forgetting_block)
    return SectionPage(section=section, title=section.title, table=_paper_block(section.table), blocks=blocks,
                       figures=figs, notes=notes)


def _experiment_name(root: Path) -> str:
    """``name`` of ``root/experiment.yaml`` when it has one, else the directory's name."""
    try:
        import yaml

        spec = yaml.safe_load((root / "experiment.yaml").read_text())
        if isinstance(spec, dict) and isinstance(spec.get("name"), str) and spec["name"].strip():
            return spec["name"].strip()
    except (OSError, ValueError, yaml.YAMLError):
        pass
    return root.resolve().name


def _setup_lines(experiment: Experiment) -> list[str]:
    runs = len(experiment.records)
    lines = [f"{runs} finished run{'s' if runs != 1 else ''} under `{experiment.root}`; baseline: "
             f"`{experiment.baseline}`."]
    if len(experiment.setup) == 1:
        setup = experiment.setup[0]
        pretrained = "random initialisation" not in setup
        lines.append(f"Encoder: {setup} in every run — encoders were "
                     f"{'pretrained' if pretrained else 'not pretrained (model.weights null)'}.")
    else:
        lines.append("Encoders differ between rows: " + "; ".join(experiment.setup) + ".")
    if experiment.skipped:
        lines.append(f"Left out ({len(experiment.skipped)} unfinished): "
                     + "; ".join(f"`{p}` ({why})" for p, why in experiment.skipped) + ".")
    return lines


def _render_markdown(title: str, setup: list[str], benchmarks: list[dict]) -> str:
    parts = [f"# {title}", "", *setup, "", paper_table.CAPTION, ""]
    for bench in benchmarks:
        parts += [f"## {bench['name']}", ""]
        if bench["overall"] is not None:
            parts += [bench["overall"].markdown(3), ""]
        for page in bench["sections"]:
            parts += [page.table.markdown(3), ""]
            for note in page.notes:
                parts.append(f"- {note}.")
            if page.notes:
                parts.append("")
            for block in page.blocks:
                parts += [block.markdown(4), ""]
            for fig in page.figures:
                parts += [f"#### {fig.title}", ""]
                if fig.caption:
                    parts += [fig.caption, ""]
                parts += [f"![{fig.title} — {page.title}]({fig.name})", ""]
    return "\n".join(parts).rstrip() + "\n"


def _render_html(title: str, setup: list[str], benchmarks: list[dict]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("lhl.report.experiment", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["inline_code"] = _inline_code
    env.filters["break_after_slash"] = _break_after_slash
    return env.get_template("report.html.j2").render(title=title, setup=setup, benchmarks=benchmarks,
                                                     caption=paper_table.CAPTION, version=__version__)


def _inline_code(text: str):
    """Markdown's `code` spans as <code> (the rest escaped)."""
    from markupsafe import Markup, escape

    pieces = str(text).split("`")
    return Markup("".join(f"<code>{escape(p)}</code>" if i % 2 else str(escape(p)) for i, p in enumerate(pieces)))


def _break_after_slash(text: str):
    """A header such as ``normal/within_11.25 ↑`` may wrap after its ``/`` (escaped otherwise)."""
    from markupsafe import Markup, escape

    return Markup("/<wbr>".join(str(escape(p)) for p in str(text).split("/")))


def _write(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside ``path`` and move it into place."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_report(root: str | Path, baseline: str = "vanilla", out: str | Path | None = None,
                 samples: int = 3) -> ReportFiles:
    """Collect the experiment under ``root`` and write its report into ``out`` (default
    ``root/report``); ``samples`` test images in the qualitative grid (0: none).

    Raises:
        ReportError: as :func:`~lhl.report.experiment.collect.collect_experiment`.
    """
    experiment = collect_experiment(root, baseline)
    directory = Path(out) if out is not None else Path(root) / "report"
    directory.mkdir(parents=True, exist_ok=True)
    title = f"Experiment report: {_experiment_name(Path(root))}"
    setup = _setup_lines(experiment)
    benchmarks = []
    for bench in experiment.benchmarks:
        overall = _paper_block(bench.overall) if bench.several_orders else None
        benchmarks.append({"name": bench.benchmark, "overall": overall,
                           "sections": [_section_page(s, samples) for s in bench.sections]})
    written: list[Path] = []
    for bench in benchmarks:
        for page in bench["sections"]:
            for fig in page.figures:
                _write(directory / fig.name, fig.png)
                written.append(directory / fig.name)
    # figures an earlier report wrote (e.g. of an order since removed) would be stale
    for stale in directory.glob("*.png"):
        if stale.name.endswith(FIGURE_SUFFIXES) and stale not in written:
            stale.unlink()
    files = ReportFiles(directory=directory, markdown=directory / "report.md", html=directory / "report.html",
                        latex=directory / "table.tex", csv=directory / "table.csv", figures=written,
                        experiment=experiment)
    _write(files.markdown, _render_markdown(title, setup, benchmarks))
    _write(files.html, _render_html(title, setup, benchmarks))
    _write(files.latex, paper_table.latex(experiment))
    _write(files.csv, paper_table.csv_text(experiment))
    return files
