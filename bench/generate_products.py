"""Generate a realistic products CSV (one row per variant), fast, streamed to disk, with a fixed seed.

22 semicolon-delimited columns, mostly the products entity's standard headers, about 360 bytes per
row: names with commas, quotes, apostrophes and accents; decimal prices as text (2 % empty); 0-8 EANs
joined with `||`; `TRUE`/`FALSE`; `DD/MM/YYYY` dates; ISO 8601 timestamps; 0.5 % of the description
cells hold an embedded newline (quoted); each product repeated for its 1-3 variants; one extra
column no job maps. Randomness is splitmix64 of the row and product numbers, in polars expressions, so the whole
file is built with vectorised expressions, chunk by chunk, and the same seed gives the same file.

    python -m bench.generate_products --rows 1000000 --out .state/bench/products-1m.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

SEED = 20261123
CHUNK_ROWS = 250_000
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15

HEADERS = (
    "Product External Id",
    "Product Names",
    "Product Descriptions",
    "Product Brand",
    "Product Classification Category Id",
    "Product Unit",
    "Deleted Product",
    "Inactive Product",
    "Variant External Id",
    "Variant Names",
    "Variant Descriptions",
    "Variant External Sku",
    "Variant Ean",
    "Variant Mpn",
    "Variant Main Image Url",
    "Variant Price",
    "Variant Weight",
    "Variant Available From",
    "Variant Updated At",
    "Deleted Variant",
    "Inactive Variant",
    "Warehouse Note",  # no entity field: always an ignored column
)

_NOUNS = (
    "Chaise",
    "Table basse",
    "Lampe",
    "Étagère",
    "Fauteuil",
    'Tabouret "Bistrot"',
    "Canapé d'angle",
    "Buffet",
    "Commode",
    "Miroir",
    "Bureau",
    "Tapis",
    "Coussin",
    "Vase",
    "Horloge",
    "Armoire",
)
_ADJECTIVES = (
    "en chêne massif",
    "scandinave, pieds noirs",
    "l'Originale",
    "façon rotin",
    'modèle "Zéphyr"',
    "à l'ancienne",
    "gris anthracite",
    "naturel, huilé",
    "Crème brûlée",
    "Señorita",
    "Ørsted, laqué",
    "d'extérieur",
)
_BRANDS = (
    "Maison Lévêque & Fils",
    "Hêtre et Cie",
    "L'Atelier du Bois",
    'Nordik "Home"',
    "Müller GmbH",
    "Œuvre Déco",
    "Casa Peña",
    "Blanc, Noir & Co",
)
_COLOURS = ("Rouge", "Bleu", "Vert d'eau", "Noir", "Blanc cassé", "Gris, clair", "Écru", '"Sable"')
_SIZES = ("S", "M", "L", "XL", "40x60 cm", "Ø 35 cm", "120 x 80", "Taille unique")
_UNITS = ("PIECE", "KG", "L", "M", "BOX")
_SENTENCES = (
    "Livré monté; garantie 2 ans.",
    "Idéal pour l'entrée, le salon ou la chambre.",
    'Finition "mat", entretien facile à l\'eau savonneuse.',
    "Bois issu de forêts gérées durablement, certifié FSC.",
    "Dimensions: voir la fiche technique.",
    "Résiste aux UV, aux rayures et à l'humidité.",
)


def _u64(value: int) -> pl.Expr:
    return pl.lit(value & _MASK, dtype=pl.UInt64)


def _rand(index: pl.Expr, salt: int) -> pl.Expr:
    """Return a pseudo-random UInt64 per row: splitmix64 of (seed, salt, index), stable across versions."""
    z = index.cast(pl.UInt64) + _u64((SEED * 1_000_003 + salt) * _GOLDEN)
    z = (z ^ (z // _u64(1 << 30))) * _u64(0xBF58476D1CE4E5B9)  # unsigned arithmetic wraps around
    z = (z ^ (z // _u64(1 << 27))) * _u64(0x94D049BB133111EB)
    return z ^ (z // _u64(1 << 31))


def _pick(index: pl.Expr, salt: int, pool: tuple[str, ...]) -> pl.Expr:
    return (
        (_rand(index, salt) % len(pool))
        .cast(pl.UInt32)
        .replace_strict(dict(enumerate(pool)), return_dtype=pl.String)
    )


def _chance(index: pl.Expr, salt: int, per_thousand: int) -> pl.Expr:
    return (_rand(index, salt) % 1000) < per_thousand


def _digits(value: pl.Expr, width: int) -> pl.Expr:
    return value.cast(pl.String).str.zfill(width)


def _description(index: pl.Expr, salt: int) -> pl.Expr:
    first, second = _pick(index, salt, _SENTENCES), _pick(index, salt + 1, _SENTENCES)
    newline = _chance(index, salt + 2, 5)  # 0.5 % of the cells span two lines
    return pl.when(newline).then(pl.concat_str(first, pl.lit("\n"), second)).otherwise(first)


def _chunk(first_product: int, rows: int, first_row: int) -> tuple[pl.DataFrame, int]:
    """Return `rows` rows starting with product `first_product`, and the next product number."""
    products = rows // 2 + rows // 20 + 8  # 2 variants on average: always enough for `rows` rows
    frame = (
        pl.DataFrame({"product": pl.int_range(first_product, first_product + products, eager=True)})
        .with_columns(variants=(_rand(pl.col("product"), 1) % 3 + 1).cast(pl.Int64))
        .with_columns(variant=pl.int_ranges(0, pl.col("variants")))
        .explode("variant")
        .head(rows)
        .with_columns(row=pl.int_range(first_row, first_row + rows))
    )
    assert frame.height == rows, (frame.height, rows)
    next_product = int(frame["product"].max()) + 1  # type: ignore[arg-type]
    p, r = pl.col("product"), pl.col("row")
    eans = [
        pl.concat_str(pl.lit("3"), _digits((_rand(r, 100 + i) % 1_000_000_000_000).cast(pl.Int64), 12))
        for i in range(8)
    ]
    ean_count = pl.min_horizontal(_rand(r, 16) % 9, _rand(r, 17) % 9).cast(pl.Int64)  # 0-8, mostly few
    days = (_rand(r, 30) % 3650).cast(pl.Int64)
    seconds = (_rand(r, 31) % (3 * 365 * 86400)).cast(pl.Int64)
    text = frame.select(
        pl.concat_str(pl.lit("P"), _digits(p, 9)).alias(HEADERS[0]),
        pl.concat_str(_pick(p, 2, _NOUNS), pl.lit(" "), _pick(p, 3, _ADJECTIVES)).alias(HEADERS[1]),
        _description(p, 4).alias(HEADERS[2]),
        _pick(p, 7, _BRANDS).alias(HEADERS[3]),
        pl.concat_str(pl.lit("CAT-"), _digits(_rand(p, 8) % 500, 4)).alias(HEADERS[4]),
        _pick(p, 9, _UNITS).alias(HEADERS[5]),
        pl.when(_chance(p, 10, 20)).then(pl.lit("TRUE")).otherwise(pl.lit("FALSE")).alias(HEADERS[6]),
        pl.when(_chance(p, 11, 50)).then(pl.lit("TRUE")).otherwise(pl.lit("FALSE")).alias(HEADERS[7]),
        pl.concat_str(pl.lit("V"), _digits(r, 10)).alias(HEADERS[8]),
        pl.concat_str(
            _pick(p, 2, _NOUNS), pl.lit(" - "), _pick(r, 12, _COLOURS), pl.lit(", "), _pick(r, 13, _SIZES)
        ).alias(HEADERS[9]),
        _description(r, 14).alias(HEADERS[10]),
        pl.concat_str(pl.lit("SKU-"), _digits(r, 10)).alias(HEADERS[11]),
        pl.when(ean_count > 0)
        .then(pl.concat_list(eans).list.head(ean_count).list.join("||"))
        .alias(HEADERS[12]),
        pl.concat_str(pl.lit("MPN/"), _digits(_rand(r, 18) % 100_000_000, 8)).alias(HEADERS[13]),
        pl.concat_str(pl.lit("https://cdn.example.com/v/"), _digits(r, 10), pl.lit(".jpg")).alias(
            HEADERS[14]
        ),
        pl.when(_chance(r, 19, 20))
        .then(None)
        .otherwise(pl.format("{}.{}", _rand(r, 20) % 2000, _digits(_rand(r, 21) % 100, 2)))
        .alias(HEADERS[15]),
        pl.when(_chance(r, 22, 20))
        .then(None)
        .otherwise(pl.format("{}.{}", _rand(r, 23) % 80, _digits(_rand(r, 24) % 1000, 3)))
        .alias(HEADERS[16]),
        (pl.date(2018, 1, 1) + pl.duration(days=days)).dt.to_string("%d/%m/%Y").alias(HEADERS[17]),
        (pl.datetime(2023, 1, 1, time_zone="UTC") + pl.duration(seconds=seconds))
        .dt.to_string("%Y-%m-%dT%H:%M:%SZ")
        .alias(HEADERS[18]),
        pl.when(_chance(r, 25, 10)).then(pl.lit("TRUE")).otherwise(pl.lit("FALSE")).alias(HEADERS[19]),
        pl.when(_chance(r, 26, 80)).then(pl.lit("TRUE")).otherwise(pl.lit("FALSE")).alias(HEADERS[20]),
        pl.format("bin {}-{}", _rand(r, 27) % 40, _rand(r, 28) % 200).alias(HEADERS[21]),
    )
    return text, next_product


def generate(rows: int, out: Path, *, chunk_rows: int = CHUNK_ROWS) -> Path:
    """Write `rows` data rows to `out` (through a temporary name, so a cut run leaves no file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    product, written = 1, 0
    with partial.open("wb") as sink:
        sink.write((";".join(HEADERS) + "\n").encode())
        while written < rows:
            size = min(chunk_rows, rows - written)
            frame, product = _chunk(product, size, written + 1)
            frame.write_csv(sink, separator=";", include_header=False)
            written += size
    partial.replace(out)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: `python -m bench.generate_products --rows N --out FILE`."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="data rows to write (default 1,000,000)")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    path = generate(args.rows, args.out)
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    print(
        f"{path}: {args.rows:,} rows, {size / 1e6:.1f} MB ({size / max(args.rows, 1):.0f} bytes/row) "
        f"in {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
