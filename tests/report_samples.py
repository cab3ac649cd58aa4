"""A messy price report shared by the parser and producer tests: a BOM, `;`, Indonesian
numbers, a unit spelled three ways, and rows with every kind of fault."""

MESSY = (
    "\ufefftanggal_ignored;observed_at;market_id;region;commodity;price;unit;source;grade\n"
    "a;2025-03-01;IP-001;DKI Jakarta;Bawang Merah;Rp 42.054;IDR/kg;pasar-report;A\n"
    "b;02/03/2025;IP-003;DKI Jakarta;CABAI MERAH;42054,5;kg;pasar-report;\n"
    "c;2025-03-03;IP-004;DKI Jakarta;beras;14.500;;;B\n"
    "d;2025-03-04;IP-005;DKI Jakarta;bawang_putih;not-a-price;kg;x;\n"
    "e;not-a-date;IP-005;DKI Jakarta;bawang_putih;40000;kg;x;\n"
    "f;2025-03-04;IP-005;DKI Jakarta;bawang_putih;40000;kg\n"
    "\n"
    "g;2025-03-04;;DKI Jakarta;bawang_putih;40000;kg;x;\n"
    "h;2025-03-04;IP-005;DKI Jakarta;bawang_putih;42,054;kg;x;\n"
)
