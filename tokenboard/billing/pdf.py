"""Invoice PDFs, drawn with fpdf2 (pure Python, no system libraries).

DejaVu Sans (Debian's fonts-dejavu-core, installed by scripts/ensure-system-deps.sh) is embedded when it is
there, for any name or address; without it the built-in Helvetica is used and characters outside Latin-1
are replaced.
"""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

from tokenboard.billing.invoices import InvoiceView
from tokenboard.kit.money import format_usd

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
STATUS_LABELS = {
    "draft": "DRAFT",
    "open": "DUE",
    "paid": "PAID",
    "void": "VOID",
    "uncollectible": "UNCOLLECTIBLE",
}


def _amount(nanousd: int) -> str:
    """Invoices show cents when the amount is whole cents, else the exact small amount."""
    return format_usd(nanousd)


class _Document:
    def __init__(self) -> None:
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=18)
        self.pdf.set_margins(18, 18, 18)
        regular, bold = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf"
        self.unicode = regular.is_file() and bold.is_file()
        if self.unicode:
            self.pdf.add_font("DejaVu", "", str(regular))
            self.pdf.add_font("DejaVu", "B", str(bold))
            self.family = "DejaVu"
        else:
            self.family = "Helvetica"
        self.pdf.add_page()

    def text(self, value: str) -> str:
        return value if self.unicode else value.encode("latin-1", "replace").decode("latin-1")

    def font(self, size: float, bold: bool = False) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)

    def cell(
        self, width: float, value: str, *, align: str = "L", height: float = 6, new_line: bool = False
    ) -> None:
        self.pdf.cell(
            width,
            height,
            self.text(value),
            align=align,
            new_x="LMARGIN" if new_line else "RIGHT",
            new_y="NEXT" if new_line else "TOP",
        )

    def block(self, value: str, height: float = 5) -> None:
        self.pdf.multi_cell(0, height, self.text(value), new_x="LMARGIN", new_y="NEXT")


def render_invoice(view: InvoiceView, *, issuer_name: str, issuer_address: str) -> bytes:
    invoice, doc = view.invoice, _Document()
    pdf = doc.pdf
    doc.font(18, bold=True)
    doc.cell(110, issuer_name)
    doc.font(12, bold=True)
    doc.cell(0, f"Invoice {invoice.number or '(draft)'}", align="R", new_line=True)
    doc.font(9)
    if issuer_address:
        doc.block(issuer_address)
    doc.cell(
        0, f"Status: {STATUS_LABELS.get(invoice.status, invoice.status.upper())}", align="R", new_line=True
    )
    pdf.ln(4)
    doc.font(10, bold=True)
    doc.cell(0, "Bill to", new_line=True)
    doc.font(10)
    doc.block(invoice.bill_to_name or "—")
    for line in (invoice.bill_to_address, invoice.bill_to_email):
        if line:
            doc.block(line)
    if invoice.tax_id or invoice.tax_country:
        doc.block(f"Tax id: {invoice.tax_id or '—'}   Country: {invoice.tax_country or '—'}")
    pdf.ln(3)
    facts = [
        ("Issued", f"{invoice.finalized_at:%Y-%m-%d}" if invoice.finalized_at else "—"),
        ("Due", f"{invoice.due_at:%Y-%m-%d}" if invoice.due_at else "—"),
        ("Paid", f"{invoice.paid_at:%Y-%m-%d}" if invoice.paid_at else "—"),
    ]
    if invoice.period_start and invoice.period_end:
        facts.append(("Period", f"{invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d}"))
    for label, value in facts:
        doc.font(9, bold=True)
        doc.cell(28, label)
        doc.font(9)
        doc.cell(0, value, new_line=True)
    pdf.ln(5)
    widths = (100, 16, 28, 30)
    doc.font(9)
    with pdf.table(
        col_widths=widths,
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
        borders_layout="HORIZONTAL_LINES",
        line_height=5.5,
        width=sum(widths),
        align="LEFT",
    ) as table:
        heading = table.row()
        for title in ("Description", "Qty", "Unit price", "Amount"):
            heading.cell(title)
        for item in view.lines:
            row = table.row()
            row.cell(doc.text(item.description))
            row.cell(f"{item.quantity:,}")
            row.cell(_amount(item.unit_amount_nanousd))
            row.cell(_amount(item.amount_nanousd))
    pdf.ln(2)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.ln(2)
    rate = f"{invoice.tax_rate_bps / 100:.2f}".rstrip("0").rstrip(".")
    totals = [
        ("Subtotal", _amount(invoice.subtotal_nanousd), False),
        (f"Tax ({rate}%)", _amount(invoice.tax_nanousd), False),
        (f"Total ({invoice.currency})", _amount(invoice.total_nanousd), True),
    ]
    for label, value, strong in totals:
        doc.font(10, bold=strong)
        doc.cell(widths[0] + widths[1] + widths[2], label, align="R")
        doc.cell(widths[3], value, align="R", new_line=True)
    pdf.ln(8)
    doc.font(8)
    doc.block(
        "Amounts are exact to the nano-dollar; tax is computed once on the subtotal and rounded half to "
        "even. Thank you for your business."
    )
    return bytes(pdf.output())
