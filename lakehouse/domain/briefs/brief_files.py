"""A weekly brief (``lakehouse.domain.briefs.brief``) as the files people take into a meeting: CSV
(one row per commodity), XLSX (``openpyxl``: the table, a bar chart of the week's changes, the
headlines) and PDF (``fpdf2``: the table, the chart drawn with matplotlib, the markets that moved
and the headlines), in Indonesian or English. The PDF's font is DejaVu Sans, shipped with
matplotlib (its licence travels with the package), so every character of a headline prints.

Numbers are written the language's way in the PDF (``Rp 14.050``; ``+3,5 %`` / ``+3.5%``, as
alert messages write them); the CSV and the spreadsheet keep plain numbers (fractions for the
changes and shares, formatted as percentages in the spreadsheet).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
from fpdf import FPDF
from matplotlib.figure import Figure
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font

from lakehouse.domain.briefs.brief import Brief, Line, Week

FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
#: the words of a brief: Indonesian, English
WORDS = {
    "title": ("Ringkasan mingguan harga pangan", "Weekly food price brief"),
    "week": ("minggu", "week"),
    "commodity": ("Komoditas", "Commodity"),
    "unit": ("Satuan", "Unit"),
    "level": ("Harga rata-rata (Rp)", "Average price (Rp)"),
    "change_week": ("vs minggu lalu", "vs last week"),
    "change_year": ("vs tahun lalu", "vs last year"),
    "surge_prob": ("Peluang lonjakan minggu depan", "Surge probability next week"),
    "days_of_cover": ("Cakupan stok (hari)", "Stock cover (days)"),
    "reports": ("Laporan", "Reports"),
    "held_share": ("Ditahan", "Held"),
    "quarantined_share": ("Dikarantina", "Quarantined"),
    "movers": ("Pasar yang paling bergerak", "Markets that moved most"),
    "headlines": ("Berita", "Headlines"),
    "chart": ("Perubahan harga vs minggu lalu", "Price change vs last week"),
    "none": ("tidak ada data minggu ini", "no data this week"),
}
COLUMNS = (
    "commodity",
    "unit",
    "level",
    "change_week",
    "change_year",
    "surge_prob",
    "days_of_cover",
    "reports",
    "held_share",
    "quarantined_share",
)
NEXT_LINE = {"new_x": "LMARGIN", "new_y": "NEXT"}  # fpdf2: a paragraph, then the next line
PERCENT_COLUMNS = {"change_week", "change_year", "surge_prob", "held_share", "quarantined_share"}


def word(name: str, language: str) -> str:
    return WORDS[name][language == "en"]


def rupiah(value: float | None) -> str:
    """``Rp 14.050``: rupiah grouped the Indonesian way in both languages."""
    return "–" if value is None else "Rp " + f"{round(value):,}".replace(",", ".")


def decimal(value: float | None, language: str, signed: bool = False) -> str:
    """One decimal, the language's way: ``3,2`` (Indonesian) or ``3.2`` (English)."""
    if value is None:
        return "–"
    text = f"{value:{'+' if signed else ''}.1f}"
    return text.replace(".", ",") if language == "id" else text


def percent(value: float | None, language: str, signed: bool = False) -> str:
    """``+3,5 %`` (Indonesian) or ``+3.5%`` (English) of a fraction."""
    if value is None:
        return "–"
    return decimal(value * 100, language, signed) + (" %" if language == "id" else "%")


def heading(brief: Brief) -> str:
    w = brief.week
    return (
        f"{word('title', brief.language)} — {brief.province}, {word('week', brief.language)} "
        f"{w} ({w.start.isoformat()} – {w.end.isoformat()})"
    )


def _value(line: Line, column: str) -> Any:
    return line.name if column == "commodity" else getattr(line, column)


def _movers(line: Line, language: str) -> str:
    return "; ".join(
        f"{m.market} ({m.regency}) {percent(m.change, language, signed=True)}" for m in line.movers
    )


def to_csv(brief: Brief) -> bytes:
    """One row per commodity; the movers and headlines joined by ``; ``."""
    out = io.StringIO()
    writer = csv.writer(out)
    language = brief.language
    writer.writerow(
        [word(c, language) for c in COLUMNS]
        + [word("movers", language), word("headlines", language)]
    )
    for line in brief.lines:
        writer.writerow(
            [_value(line, c) for c in COLUMNS]
            + [_movers(line, language), "; ".join(line.headlines)]
        )
    return out.getvalue().encode("utf-8")


def to_xlsx(brief: Brief) -> bytes:
    """The table (changes and shares as percentages), a bar chart of the week's changes, and a
    sheet of the movers and headlines."""
    language = brief.language
    book = Workbook()
    sheet = book.active
    sheet.title = word("title", language)[:31]
    sheet.append([heading(brief)])
    sheet["A1"].font = Font(bold=True)
    sheet.append([word(c, language) for c in COLUMNS])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for line in brief.lines:
        sheet.append([_value(line, c) for c in COLUMNS])
    for index, column in enumerate(COLUMNS, start=1):
        letter = sheet.cell(row=2, column=index).column_letter
        sheet.column_dimensions[letter].width = 22 if column == "commodity" else 16
        fmt = "0.0%" if column in PERCENT_COLUMNS else "#,##0" if column == "level" else "0.0"
        for row in range(3, 3 + len(brief.lines)):
            sheet.cell(row=row, column=index).number_format = fmt
    if brief.lines:
        chart = BarChart()
        chart.title = word("chart", language)
        chart.y_axis.number_format = "0%"
        change = COLUMNS.index("change_week") + 1
        last = 2 + len(brief.lines)
        chart.add_data(
            Reference(sheet, min_col=change, min_row=2, max_row=last), titles_from_data=True
        )
        chart.set_categories(Reference(sheet, min_col=1, min_row=3, max_row=last))
        sheet.add_chart(chart, f"B{last + 3}")
    notes = book.create_sheet(word("headlines", language))
    notes.append(
        [word("commodity", language), word("movers", language), word("headlines", language)]
    )
    for line in brief.lines:
        notes.append([line.name, _movers(line, language), "\n".join(line.headlines)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def chart_png(brief: Brief) -> bytes:
    """A bar per commodity: its change against the week before (red up, green down)."""
    lines = [line for line in brief.lines if line.change_week is not None]
    figure = Figure(figsize=(8, 0.35 * max(len(lines), 3) + 1), dpi=120)  # no pyplot: no display
    axes = figure.subplots()
    changes = [line.change_week * 100 for line in lines]  # type: ignore[operator]
    axes.barh(
        [line.name for line in lines],
        changes,
        color=["#d73027" if c > 0 else "#1a9850" for c in changes],
    )
    axes.axvline(0, color="#555", linewidth=0.8)
    axes.set_xlabel("%")
    axes.set_title(word("chart", brief.language))
    axes.invert_yaxis()
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def to_pdf(brief: Brief) -> bytes:
    """A landscape A4: the heading, the table, the chart, then per commodity the markets that
    moved and the headlines."""
    language = brief.language
    pdf = FPDF(orientation="L", format="A4")
    pdf.add_font("DejaVu", "", str(FONT / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 13)
    pdf.multi_cell(0, 7, heading(brief), **NEXT_LINE)
    pdf.ln(2)
    pdf.set_font("DejaVu", "", 8)
    if not brief.lines:
        pdf.cell(0, 6, word("none", language))
        return bytes(pdf.output())
    cells: dict[str, Callable[[Line], str]] = {
        "commodity": lambda line: line.name,
        "unit": lambda line: line.unit,
        "level": lambda line: rupiah(line.level),
        "change_week": lambda line: percent(line.change_week, language, signed=True),
        "change_year": lambda line: percent(line.change_year, language, signed=True),
        "surge_prob": lambda line: percent(line.surge_prob, language),
        "days_of_cover": lambda line: decimal(line.days_of_cover, language),
        "reports": lambda line: str(line.reports),
        "held_share": lambda line: percent(line.held_share, language),
        "quarantined_share": lambda line: percent(line.quarantined_share, language),
    }
    with pdf.table(col_widths=(40, 14, 26, 22, 22, 26, 22, 16, 18, 22), text_align="LEFT") as table:
        header = table.row()
        for column in COLUMNS:
            header.cell(word(column, language))
        for line in brief.lines:
            row = table.row()
            for column in COLUMNS:
                row.cell(cells[column](line))
    pdf.ln(3)
    pdf.image(io.BytesIO(chart_png(brief)), w=170)
    pdf.add_page()
    for line in brief.lines:
        pdf.set_font("DejaVu", "B", 10)
        pdf.multi_cell(0, 6, line.name, **NEXT_LINE)
        pdf.set_font("DejaVu", "", 8)
        pdf.multi_cell(
            0, 5, f"{word('movers', language)}: {_movers(line, language) or '–'}", **NEXT_LINE
        )
        for headline in line.headlines:
            pdf.multi_cell(0, 5, f"• {headline}", **NEXT_LINE)
        pdf.ln(1)
    return bytes(pdf.output())


RENDERERS: dict[str, Callable[[Brief], bytes]] = {"pdf": to_pdf, "xlsx": to_xlsx, "csv": to_csv}


def warm_up() -> None:
    """Render a one-line brief in every format and throw it away: what a process's first
    brief would otherwise pay for once (the renderers' imports, matplotlib's fonts, fpdf2's
    font files), paid ahead of it."""
    line = Line("beras", "Beras", "kg", 14_050.0, 0.01, 0.02, 0.1, 5.0, 7, 0.0, 0.0)
    brief = Brief("Indonesia", Week(2026, 1), "id", [line])
    for render in RENDERERS.values():
        render(brief)
