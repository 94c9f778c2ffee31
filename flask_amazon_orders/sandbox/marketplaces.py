"""Amazon marketplaces and the country data the sandbox uses to make orders look real.

Marketplace ids, regions and currencies are Amazon's (SP-API "Marketplace IDs" page).
VAT and sales-tax rates are the standard rates of each country. Names, streets and
cities are ordinary made-up examples; they belong to nobody.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Marketplace:
    """One Amazon marketplace."""

    marketplace_id: str
    country: str
    name: str
    currency: str
    region: str
    #: Standard VAT / sales tax rate in basis points (1900 = 19 %).
    tax_bp: int
    #: Typical first groups of order ids in this marketplace.
    order_prefixes: tuple[str, ...]
    #: Rough price level against EUR, used to convert the default catalog.
    price_factor: float = 1.0
    #: Language of product titles in the default catalog ("de" or "en").
    language: str = "en"


_MARKETPLACES = [
    Marketplace(
        "A1PA6795UKMFR9",
        "DE",
        "Amazon.de",
        "EUR",
        "eu",
        1900,
        ("302", "303", "304", "305", "306", "028"),
        1.0,
        "de",
    ),
    Marketplace(
        "A1F83G8C2ARO7P",
        "GB",
        "Amazon.co.uk",
        "GBP",
        "eu",
        2000,
        ("202", "203", "204", "205", "206", "026"),
        0.86,
    ),
    Marketplace(
        "A13V1IB3VIYZZH",
        "FR",
        "Amazon.fr",
        "EUR",
        "eu",
        2000,
        ("402", "403", "404", "405", "406", "171"),
        1.0,
    ),
    Marketplace(
        "APJ6JRA9NG5V4",
        "IT",
        "Amazon.it",
        "EUR",
        "eu",
        2200,
        ("402", "403", "404", "405", "406", "171"),
        1.0,
    ),
    Marketplace(
        "A1RKKUPIHCS9HS",
        "ES",
        "Amazon.es",
        "EUR",
        "eu",
        2100,
        ("402", "403", "404", "405", "406", "171"),
        1.0,
    ),
    Marketplace(
        "A1805IZSGTT6HS",
        "NL",
        "Amazon.nl",
        "EUR",
        "eu",
        2100,
        ("402", "403", "404", "405", "406", "171"),
        1.0,
    ),
    Marketplace(
        "AMEN7PMS3EDWL",
        "BE",
        "Amazon.com.be",
        "EUR",
        "eu",
        2100,
        ("402", "403", "404", "405", "406", "171"),
        1.0,
    ),
    Marketplace(
        "A28R8C7NBKEWEA",
        "IE",
        "Amazon.ie",
        "EUR",
        "eu",
        2300,
        ("402", "403", "404", "405", "406", "171"),
        1.0,
    ),
    Marketplace(
        "A2NODRKZP88ZB9",
        "SE",
        "Amazon.se",
        "SEK",
        "eu",
        2500,
        ("402", "403", "404", "405", "406", "171"),
        11.5,
    ),
    Marketplace(
        "A1C3SOZRARQ6R3",
        "PL",
        "Amazon.pl",
        "PLN",
        "eu",
        2300,
        ("402", "403", "404", "405", "406", "171"),
        4.3,
    ),
    Marketplace(
        "AE08WJ6YKNBMC", "ZA", "Amazon.co.za", "ZAR", "eu", 1500, ("402", "403", "404"), 20.0
    ),
    Marketplace("ARBP9OOSHTCHU", "EG", "Amazon.eg", "EGP", "eu", 1400, ("402", "403", "404"), 52.0),
    Marketplace(
        "A33AVAJ2PDY3EV",
        "TR",
        "Amazon.com.tr",
        "TRY",
        "eu",
        2000,
        ("402", "403", "404", "028"),
        37.0,
    ),
    Marketplace("A17E79C6D8DWNP", "SA", "Amazon.sa", "SAR", "eu", 1500, ("402", "403", "404"), 4.0),
    Marketplace("A2VIGQ35RCS4UG", "AE", "Amazon.ae", "AED", "eu", 500, ("402", "403", "404"), 4.0),
    Marketplace(
        "A21TJRUUN4KGV", "IN", "Amazon.in", "INR", "eu", 1800, ("402", "403", "404", "171"), 90.0
    ),
    Marketplace("A2EUQ1WTGCTBG2", "CA", "Amazon.ca", "CAD", "na", 1300, ("701", "702", "703"), 1.5),
    Marketplace(
        "ATVPDKIKX0DER", "US", "Amazon.com", "USD", "na", 700, ("111", "112", "113", "114"), 1.08
    ),
    Marketplace(
        "A1AM78C64UM0Y8", "MX", "Amazon.com.mx", "MXN", "na", 1600, ("701", "702", "703"), 19.0
    ),
    Marketplace(
        "A2Q3Y263D00KWC", "BR", "Amazon.com.br", "BRL", "na", 1700, ("701", "702", "171"), 5.5
    ),
    Marketplace("A19VAU5U5O7RUS", "SG", "Amazon.sg", "SGD", "fe", 900, ("503", "249", "250"), 1.45),
    Marketplace(
        "A39IBJ37TRP1C6", "AU", "Amazon.com.au", "AUD", "fe", 1000, ("503", "249", "250"), 1.65
    ),
    Marketplace(
        "A1VC38T7YXB528", "JP", "Amazon.co.jp", "JPY", "fe", 1000, ("503", "249", "250"), 160.0
    ),
]

#: All marketplaces by id.
MARKETPLACES: dict[str, Marketplace] = {m.marketplace_id: m for m in _MARKETPLACES}

#: The sandbox's default marketplace (Germany).
DEFAULT_MARKETPLACE_ID = "A1PA6795UKMFR9"

#: Who remits marketplace-facilitator tax, by region.
TAX_RESPONSIBLE_PARTY = {
    "eu": "Amazon Services Europe S.a.r.L.",
    "na": "Amazon Services LLC",
    "fe": "Amazon Services International, Inc.",
}


@dataclass(frozen=True)
class Locale:
    """Made-up but plausible people and places of one country."""

    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    #: (city, postal code, state or region)
    cities: tuple[tuple[str, str, str], ...]
    phone_prefix: str
    #: Whether the house number comes before the street name ("10 Main Street").
    number_first: bool = False
    #: (carrier, shipping service, tracking number length)
    carriers: tuple[tuple[str, str, int], ...] = field(default=(("DHL", "DHL Paket", 20),))


LOCALES: dict[str, Locale] = {
    "DE": Locale(
        (
            "Anna",
            "Lukas",
            "Sophie",
            "Jonas",
            "Marie",
            "Felix",
            "Laura",
            "Maximilian",
            "Lea",
            "Paul",
            "Hannah",
            "Leon",
            "Julia",
            "Tim",
            "Katharina",
            "Jan",
        ),
        (
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Schulz",
            "Hoffmann",
            "Koch",
            "Richter",
            "Klein",
            "Wolf",
            "Schröder",
            "Neumann",
        ),
        (
            "Hauptstraße",
            "Bahnhofstraße",
            "Gartenstraße",
            "Schulstraße",
            "Lindenweg",
            "Bergstraße",
            "Kirchplatz",
            "Am Markt",
            "Goethestraße",
            "Waldweg",
        ),
        (
            ("Berlin", "10115", "Berlin"),
            ("München", "80331", "Bayern"),
            ("Hamburg", "20095", "Hamburg"),
            ("Köln", "50667", "Nordrhein-Westfalen"),
            ("Frankfurt am Main", "60311", "Hessen"),
            ("Stuttgart", "70173", "Baden-Württemberg"),
            ("Leipzig", "04109", "Sachsen"),
            ("Dresden", "01067", "Sachsen"),
            ("Hannover", "30159", "Niedersachsen"),
            ("Nürnberg", "90402", "Bayern"),
        ),
        "+49 30 ",
        carriers=(
            ("DHL", "DHL Paket", 20),
            ("Hermes", "Hermes Paket", 14),
            ("DPD", "DPD Classic", 14),
        ),
    ),
    "GB": Locale(
        ("Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Emily"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies"),
        ("High Street", "Station Road", "Church Lane", "Victoria Road", "Green Lane", "Manor Road"),
        (
            ("London", "SW1A 1AA", "England"),
            ("Manchester", "M1 1AE", "England"),
            ("Birmingham", "B1 1BB", "England"),
            ("Leeds", "LS1 1UR", "England"),
            ("Glasgow", "G1 1XQ", "Scotland"),
            ("Cardiff", "CF10 1EP", "Wales"),
        ),
        "+44 20 ",
        number_first=True,
        carriers=(("Royal Mail", "Royal Mail Tracked 48", 13), ("DPD", "DPD Next Day", 14)),
    ),
    "FR": Locale(
        ("Camille", "Louis", "Léa", "Hugo", "Chloé", "Lucas", "Manon", "Jules"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"),
        (
            "rue de la République",
            "avenue Victor Hugo",
            "rue Nationale",
            "boulevard Voltaire",
            "rue Pasteur",
        ),
        (
            ("Paris", "75001", "Île-de-France"),
            ("Lyon", "69001", "Auvergne-Rhône-Alpes"),
            ("Marseille", "13001", "Provence-Alpes-Côte d'Azur"),
            ("Toulouse", "31000", "Occitanie"),
            ("Bordeaux", "33000", "Nouvelle-Aquitaine"),
        ),
        "+33 1 ",
        number_first=True,
        carriers=(("Colissimo", "Colissimo Domicile", 13), ("Chronopost", "Chrono 13", 13)),
    ),
    "IT": Locale(
        ("Giulia", "Francesco", "Sofia", "Alessandro", "Aurora", "Lorenzo", "Martina", "Matteo"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"),
        ("Via Roma", "Via Garibaldi", "Corso Italia", "Via Mazzini", "Via Dante"),
        (
            ("Roma", "00184", "RM"),
            ("Milano", "20121", "MI"),
            ("Napoli", "80133", "NA"),
            ("Torino", "10121", "TO"),
            ("Bologna", "40121", "BO"),
        ),
        "+39 06 ",
        carriers=(("BRT", "BRT Standard", 14), ("Poste Italiane", "Poste Delivery", 13)),
    ),
    "ES": Locale(
        ("Lucía", "Hugo", "Martina", "Daniel", "Paula", "Pablo", "Sara", "Alejandro"),
        ("García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez"),
        (
            "Calle Mayor",
            "Calle Real",
            "Avenida de la Constitución",
            "Calle del Sol",
            "Paseo de Gracia",
        ),
        (
            ("Madrid", "28013", "Madrid"),
            ("Barcelona", "08002", "Barcelona"),
            ("Valencia", "46002", "Valencia"),
            ("Sevilla", "41001", "Sevilla"),
            ("Bilbao", "48001", "Bizkaia"),
        ),
        "+34 91 ",
        carriers=(("Correos", "Correos Paq Premium", 13), ("SEUR", "SEUR 24", 14)),
    ),
    "NL": Locale(
        ("Emma", "Daan", "Julia", "Sem", "Tess", "Lucas", "Sophie", "Finn"),
        ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser", "Smit"),
        ("Kerkstraat", "Dorpsstraat", "Schoolstraat", "Molenweg", "Stationsweg"),
        (
            ("Amsterdam", "1012 AB", "Noord-Holland"),
            ("Rotterdam", "3011 AA", "Zuid-Holland"),
            ("Utrecht", "3511 AA", "Utrecht"),
            ("Den Haag", "2511 AA", "Zuid-Holland"),
        ),
        "+31 20 ",
        carriers=(("PostNL", "PostNL Standaard", 13), ("DHL", "DHL Parcel", 14)),
    ),
    "US": Locale(
        ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda"),
        ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson"),
        ("Main Street", "Oak Avenue", "Maple Drive", "Park Avenue", "Cedar Lane", "Elm Street"),
        (
            ("Seattle", "98101", "WA"),
            ("Austin", "78701", "TX"),
            ("Denver", "80202", "CO"),
            ("Chicago", "60601", "IL"),
            ("Boston", "02108", "MA"),
            ("Miami", "33130", "FL"),
        ),
        "+1 206 555 ",
        number_first=True,
        carriers=(("UPS", "UPS Ground", 18), ("USPS", "USPS Priority Mail", 22)),
    ),
    "JP": Locale(
        ("Haruto", "Yui", "Sota", "Hina", "Yuto", "Aoi", "Riku", "Mei"),
        ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura"),
        ("Chuo-dori", "Meiji-dori", "Aoyama-dori", "Omotesando"),
        (
            ("Tokyo", "150-0002", "Tokyo"),
            ("Osaka", "530-0001", "Osaka"),
            ("Yokohama", "220-0012", "Kanagawa"),
            ("Nagoya", "450-0002", "Aichi"),
        ),
        "+81 3 ",
        number_first=True,
        carriers=(("Yamato Transport", "TA-Q-BIN", 12), ("Japan Post", "Yu-Pack", 12)),
    ),
}

#: Locale used for a country without its own entry.
FALLBACK_LOCALE = LOCALES["GB"]


def locale_for(country: str) -> Locale:
    """The :class:`Locale` of ``country``, or a neutral English one."""
    return LOCALES.get(country, FALLBACK_LOCALE)


#: The default product catalog: (sku, German title, English title, price in EUR, ASIN).
DEFAULT_CATALOG: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "BOTTLE-750-STEEL",
        "Edelstahl Trinkflasche 750 ml, auslaufsicher",
        "Stainless steel water bottle 750 ml, leak-proof",
        "19.99",
        "B0C7K2M4Q1",
    ),
    (
        "MUG-CERAMIC-350",
        "Keramik Kaffeebecher 350 ml, spülmaschinenfest",
        "Ceramic coffee mug 350 ml, dishwasher safe",
        "12.49",
        "B0B9X4T7N2",
    ),
    (
        "CABLE-USBC-2M",
        "USB-C Ladekabel 2 m, geflochten",
        "USB-C charging cable 2 m, braided",
        "9.99",
        "B09Q3L8R5W",
    ),
    (
        "LAMP-LED-DESK",
        "LED Schreibtischlampe, dimmbar, 3 Farbtemperaturen",
        "LED desk lamp, dimmable, 3 colour temperatures",
        "34.90",
        "B0A1F6Z3K8",
    ),
    (
        "TOWEL-SET-4",
        "Handtuch-Set 4-teilig, 100 % Baumwolle",
        "Towel set of 4, 100% cotton",
        "29.95",
        "B08T5H2J9D",
    ),
    (
        "NOTEBOOK-A5-DOT",
        "Notizbuch A5 gepunktet, 160 Seiten",
        "A5 dotted notebook, 160 pages",
        "8.50",
        "B07Y6C1V4M",
    ),
    (
        "HEADPHONES-BT-01",
        "Bluetooth Kopfhörer Over-Ear, 30 h Akku",
        "Bluetooth over-ear headphones, 30 h battery",
        "59.00",
        "B0CJ8N7P2X",
    ),
    (
        "YOGA-MAT-6MM",
        "Yogamatte 6 mm, rutschfest, mit Tragegurt",
        "Yoga mat 6 mm, non-slip, with strap",
        "24.99",
        "B09M4D7S1E",
    ),
    (
        "KNIFE-CHEF-20",
        "Kochmesser 20 cm, japanischer Stahl",
        "Chef's knife 20 cm, Japanese steel",
        "44.00",
        "B08R2W9Y5T",
    ),
    (
        "CANDLE-SOY-200",
        "Duftkerze Sojawachs 200 g, Lavendel",
        "Soy wax scented candle 200 g, lavender",
        "14.99",
        "B0BZ3Q6U8A",
    ),
    (
        "SOCKS-WOOL-3P",
        "Wollsocken 3 Paar, Größe 39-42",
        "Wool socks, 3 pairs, size 6-8",
        "17.90",
        "B07X8P3N6G",
    ),
    (
        "PHONE-CASE-15",
        "Handyhülle Silikon, stoßfest",
        "Silicone phone case, shockproof",
        "11.99",
        "B0CK5V2R7L",
    ),
    (
        "TEA-GREEN-100",
        "Bio Grüner Tee, 100 Beutel",
        "Organic green tea, 100 bags",
        "7.49",
        "B09N1T4E6C",
    ),
    (
        "BACKPACK-20L",
        "Rucksack 20 l, wasserabweisend",
        "Backpack 20 l, water-repellent",
        "39.99",
        "B0B6J9K3H5",
    ),
    (
        "PLANT-POT-CER",
        "Blumentopf Keramik 18 cm mit Untersetzer",
        "Ceramic plant pot 18 cm with saucer",
        "16.50",
        "B08L7M2B4F",
    ),
    ("CHARGER-65W", "USB-C Netzteil 65 W, GaN", "USB-C charger 65 W, GaN", "32.99", "B0BH4X8C2P"),
    (
        "PUZZLE-1000",
        "Puzzle 1000 Teile, Alpenpanorama",
        "1000-piece jigsaw puzzle, Alpine panorama",
        "15.99",
        "B07V9G5L1Q",
    ),
    ("PAN-CAST-28", "Gusseisen Pfanne 28 cm", "Cast iron frying pan 28 cm", "49.90", "B09C2E8W6Z"),
    ("SCARF-MERINO", "Merino Schal, grau", "Merino wool scarf, grey", "27.00", "B0D1S3F5J7"),
    (
        "BATTERY-AA-8",
        "AA Akkus 8 Stück, 2500 mAh",
        "AA rechargeable batteries, pack of 8, 2500 mAh",
        "21.49",
        "B08F6Y4T9N",
    ),
)
