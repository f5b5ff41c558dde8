"""Reference data of the synthetic lead generator: categories, places, vehicles, jobs.

The tables hold what a lead form would show (labels, spelling variants), how often each
value occurs and its effect on the conversion logit documented in docs/synthetic-data.md.
Row order is part of the output: indices are drawn against it, so reordering or inserting
rows changes the generated data.
"""

from __future__ import annotations

from typing import NamedTuple


class Cat(NamedTuple):
    """A category label, its relative frequency and its effect on the conversion logit."""

    label: str
    weight: float
    effect: float = 0.0


class Model(NamedTuple):
    """A vehicle model: label, frequency within its make, and body class."""

    label: str
    weight: float
    kind: str


class Make(NamedTuple):
    """A vehicle make with its models."""

    label: str
    weight: float
    models: tuple[Model, ...]


class City(NamedTuple):
    """A US city: display name, state code, first ZIP, ZIP span, frequency, misspellings."""

    name: str
    state: str
    zip_base: int
    zip_span: int
    weight: float
    typos: tuple[str, ...] = ()


class Occupation(NamedTuple):
    """An occupation as written on forms (first variant canonical) and its effects."""

    variants: tuple[str, ...]
    weight: float
    auto: float
    life: float


class Phrase(NamedTuple):
    """An item of a list-valued text field (variants as written) and its effect."""

    variants: tuple[str, ...]
    weight: float
    effect: float


CITIES: tuple[City, ...] = (
    City("New York", "NY", 10001, 280, 8.0, ("New York City", "NYC", "new york")),
    City("Brooklyn", "NY", 11201, 40, 3.0, ("Brooklin",)),
    City("Buffalo", "NY", 14201, 30, 0.8),
    City("Los Angeles", "CA", 90001, 90, 5.0, ("Los Angelas", "los angeles")),
    City("San Diego", "CA", 92101, 80, 2.0, ("San Deigo",)),
    City("San Francisco", "CA", 94102, 30, 1.5, ("San Fransisco", "SF")),
    City("San Jose", "CA", 95110, 30, 1.3),
    City("Sacramento", "CA", 95814, 30, 0.9, ("Sacramneto",)),
    City("Fresno", "CA", 93701, 30, 0.7),
    City("Houston", "TX", 77002, 90, 3.0, ("Huston",)),
    City("Dallas", "TX", 75201, 50, 2.0),
    City("Austin", "TX", 78701, 50, 1.5),
    City("San Antonio", "TX", 78201, 50, 2.0, ("San Antonia",)),
    City("El Paso", "TX", 79901, 30, 0.8),
    City("Miami", "FL", 33101, 90, 1.5, ("Miama",)),
    City("Orlando", "FL", 32801, 30, 1.0),
    City("Tampa", "FL", 33601, 40, 1.0),
    City("Jacksonville", "FL", 32099, 200, 1.2, ("Jacksonvile",)),
    City("Chicago", "IL", 60601, 60, 3.5, ("Chicgo",)),
    City("Springfield", "IL", 62701, 10, 0.3),
    City("Phoenix", "AZ", 85001, 50, 2.2, ("Pheonix",)),
    City("Tucson", "AZ", 85701, 50, 0.7),
    City("Philadelphia", "PA", 19102, 50, 2.0, ("Philadephia", "Philly")),
    City("Pittsburgh", "PA", 15201, 30, 0.8, ("Pittsburg",)),
    City("Columbus", "OH", 43201, 30, 1.2),
    City("Cleveland", "OH", 44101, 30, 0.8),
    City("Cincinnati", "OH", 45201, 30, 0.7, ("Cincinatti",)),
    City("Detroit", "MI", 48201, 30, 1.0),
    City("Grand Rapids", "MI", 49501, 20, 0.5),
    City("Atlanta", "GA", 30301, 40, 1.5, ("Atlana",)),
    City("Charlotte", "NC", 28201, 30, 1.2),
    City("Raleigh", "NC", 27601, 20, 0.7),
    City("Seattle", "WA", 98101, 40, 1.2, ("Seatle",)),
    City("Spokane", "WA", 99201, 20, 0.4),
    City("Denver", "CO", 80201, 40, 1.2),
    City("Boston", "MA", 2108, 20, 1.0),
    City("Newark", "NJ", 7101, 10, 0.6),
    City("Jersey City", "NJ", 7302, 10, 0.5),
    City("Trenton", "NJ", 8601, 10, 0.3),
    City("Baltimore", "MD", 21201, 30, 0.9),
    City("Nashville", "TN", 37201, 30, 1.0, ("Nashvile",)),
    City("Memphis", "TN", 38101, 30, 0.8),
    City("Portland", "OR", 97201, 30, 0.9),
    City("Las Vegas", "NV", 89101, 50, 1.0, ("Las Vagas",)),
    City("Minneapolis", "MN", 55401, 20, 0.8),
    City("New Orleans", "LA", 70112, 30, 0.6),
    City("Kansas City", "MO", 64101, 30, 0.7),
    City("St. Louis", "MO", 63101, 30, 0.6, ("Saint Louis", "St Louis")),
    City("Indianapolis", "IN", 46201, 30, 1.0, ("Indianpolis",)),
    City("Louisville", "KY", 40201, 30, 0.6),
    City("Oklahoma City", "OK", 73101, 30, 0.7),
    City("Albuquerque", "NM", 87101, 20, 0.5, ("Albuquerqe",)),
    City("Salt Lake City", "UT", 84101, 20, 0.5, ("SLC",)),
    City("Milwaukee", "WI", 53201, 20, 0.6),
    City("Birmingham", "AL", 35201, 20, 0.5),
    City("Richmond", "VA", 23218, 10, 0.3),
    City("Virginia Beach", "VA", 23450, 10, 0.3),
    City("Columbia", "SC", 29201, 10, 0.2),
    City("Hartford", "CT", 6101, 10, 0.15),
    City("Omaha", "NE", 68101, 20, 0.2),
    City("Des Moines", "IA", 50301, 10, 0.15),
    City("Little Rock", "AR", 72201, 10, 0.15),
    City("Wichita", "KS", 67201, 10, 0.15),
    City("Boise", "ID", 83701, 10, 0.2),
    City("Honolulu", "HI", 96801, 20, 0.2),
    City("Jackson", "MS", 39201, 10, 0.1),
    City("Providence", "RI", 2901, 5, 0.06),
    City("Portland", "ME", 4101, 5, 0.05),
    City("Wilmington", "DE", 19801, 5, 0.05),
    City("Manchester", "NH", 3101, 5, 0.04),
    City("Sioux Falls", "SD", 57101, 5, 0.04),
    City("Fargo", "ND", 58102, 5, 0.04),
    City("Burlington", "VT", 5401, 5, 0.03),
    City("Missoula", "MT", 59801, 5, 0.03),
    City("Charleston", "WV", 25301, 5, 0.03),
    City("Cheyenne", "WY", 82001, 5, 0.02),
    City("Juneau", "AK", 99801, 3, 0.01),
)

# How a location is typed: (template, weight). {c} city, {s} state code, {z} ZIP.
LOCATION_FORMATS: tuple[tuple[str, float], ...] = (
    ("{c}, {s} {z}", 0.30),
    ("{c}, {s}", 0.32),
    ("{cl} {sl}", 0.12),
    ("{c} {s} {z}", 0.07),
    ("{c},{s}", 0.05),
    ("{c}, {s}, USA", 0.04),
    ("{cu}, {s} {z}", 0.04),
    ("{c}, {sl}", 0.06),
)

STREETS: tuple[str, ...] = (
    "Main", "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park",
    "2nd", "3rd", "1st", "Sunset", "Highland", "Lincoln", "Jefferson", "Madison", "River",
    "Church", "Spring", "Walnut", "Chestnut", "Willow", "Meadow", "Forest", "Ridge",
    "Franklin", "Center", "Mill",
)  # fmt: skip
SUFFIXES: tuple[tuple[str, ...], ...] = (
    ("St", "Street", "st.", "St."),
    ("Ave", "Avenue", "av", "Ave."),
    ("Rd", "Road", "rd"),
    ("Dr", "Drive", "dr."),
    ("Ln", "Lane"),
    ("Blvd", "Boulevard"),
    ("Court",),
    ("Way",),
    ("Pl", "Place"),
    ("Cir", "Circle"),
    ("Ter", "Terrace"),
)

OCCUPATIONS: tuple[Occupation, ...] = (
    Occupation(("Software Engineer", "software engineer", "SW engineer", "Sofware Engineer",
                 "software eng", "Software Developer", "sr software engineer"), 6.0, 0.45, 0.5),
    Occupation(("Registered Nurse", "RN", "nurse", "Regsitered Nurse",
                 "registered nurse (RN)", "LPN"), 6.0, 0.4, 0.45),
    Occupation(("Teacher", "school teacher", "teacher - elementary", "Techer", "HS teacher",
                 "educator"), 6.0, 0.4, 0.4),
    Occupation(("Accountant", "CPA", "acountant", "Staff Accountant", "bookkeeper"),
                3.5, 0.35, 0.45),
    Occupation(("Sales Representative", "sales rep", "Sales", "salesman", "Sales Rep.",
                 "account executive"), 6.0, 0.05, 0.1),
    Occupation(("Truck Driver", "trucker", "CDL driver", "truck drvier", "OTR truck driver"),
                4.0, 0.15, -0.3),
    Occupation(("Construction Worker", "construction", "laborer", "Constrution worker",
                 "general labor"), 5.0, -0.15, -0.45),
    Occupation(("Retail Associate", "cashier", "retail", "Store Clerk", "retail sales"),
                6.0, -0.25, -0.2),
    Occupation(("Student", "college student", "Grad Student", "studnet",
                 "full time student"), 5.0, -0.6, -0.6),
    Occupation(("Retired", "Retiree", "ret.", "retired teacher"), 8.0, -0.2, -0.3),
    Occupation(("Unemployed", "not employed", "none", "between jobs"), 4.0, -0.9, -0.9),
    Occupation(("Manager", "office manager", "Mgr", "Project Manager", "manger",
                 "operations mgr"), 7.0, 0.25, 0.35),
    Occupation(("Physician", "Doctor", "Phyisician", "family physician", "surgeon"),
                1.5, 0.35, 0.6),
    Occupation(("Attorney", "Lawyer", "atty", "attorney at law"), 1.5, 0.2, 0.55),
    Occupation(("Active Duty Military", "Military", "US Army", "Navy", "USMC", "Air Force",
                 "soldier"), 2.0, 0.7, 0.4),
    Occupation(("Police Officer", "police", "Law Enforcement", "cop", "Sheriff Deputy"),
                1.5, 0.3, 0.1),
    Occupation(("Electrician", "Elecrician", "journeyman electrician"), 2.0, 0.1, 0.0),
    Occupation(("Cook", "Chef", "Line Cook", "Sous Chef", "kitchen staff"), 3.0, -0.2, -0.2),
    Occupation(("Real Estate Agent", "realtor", "RE agent", "Realtor"), 1.5, 0.1, 0.2),
    Occupation(("Business Owner", "self employed", "Self-Employed", "owner", "entrepreneur",
                 "small business owner"), 4.0, 0.2, 0.45),
    Occupation(("Airline Pilot", "pilot", "Commercial Pilot"), 0.4, 0.2, -0.5),
    Occupation(("Homemaker", "stay at home parent", "SAHM", "housewife",
                 "stay-at-home mom"), 3.0, -0.1, 0.25),
    Occupation(("Mechanic", "auto mechanic", "mechanic tech"), 2.0, 0.0, -0.1),
    Occupation(("Plumber", "plumber apprentice"), 1.0, 0.05, 0.0),
    Occupation(("Farmer", "rancher", "farm owner"), 0.8, -0.1, -0.2),
    Occupation(("Firefighter", "fire fighter", "FDNY"), 0.7, 0.3, -0.2),
    Occupation(("Pharmacist", "PharmD"), 0.6, 0.3, 0.5),
    Occupation(("Professor", "college professor", "Prof."), 0.5, 0.3, 0.5),
    Occupation(("Social Worker", "case worker", "social wrker"), 1.0, 0.1, 0.1),
    Occupation(("Rideshare Driver", "Uber driver", "lyft driver", "gig driver"),
                1.2, 0.1, -0.3),
    Occupation(("Pastor", "clergy", "Minister"), 0.15, 0.2, 0.3),
    Occupation(("Veterinarian", "vet", "DVM"), 0.15, 0.3, 0.5),
    Occupation(("Dental Hygienist", "hygienist"), 0.3, 0.3, 0.3),
    Occupation(("Barber", "hair stylist"), 0.3, 0.0, 0.0),
    Occupation(("Commercial Fisherman", "fisherman"), 0.05, -0.3, -1.0),
    Occupation(("Logger", "lumberjack"), 0.04, -0.2, -1.0),
    Occupation(("Coal Miner", "miner"), 0.04, -0.2, -1.0),
    Occupation(("Actuary",), 0.05, 0.3, 0.8),
    Occupation(("Air Traffic Controller", "ATC"), 0.02, 0.3, 0.3),
    Occupation(("Stunt Performer", "stuntman"), 0.005, -0.5, -1.5),
)  # fmt: skip
OCC_STUDENT = 8
OCC_RETIRED = 9


def _m(*models: tuple[str, float, str]) -> tuple[Model, ...]:
    """Build a make's model table from ``(label, weight, body class)`` triples."""
    return tuple(Model(*m) for m in models)


MAKES: tuple[Make, ...] = (
    Make("Toyota", 14.0, _m(("Camry", 25, "sedan"), ("Corolla", 22, "sedan"),
                             ("RAV4", 22, "suv"), ("Tacoma", 10, "truck"),
                             ("Highlander", 9, "suv"), ("Prius", 6, "sedan"),
                             ("Tundra", 4, "truck"), ("Sienna", 3, "van"), ("4Runner", 4, "suv"),
                             ("Supra", 0.4, "sports"), ("Land Cruiser", 0.3, "suv"))),
    Make("Ford", 12.0, _m(("F-150", 35, "truck"), ("Escape", 15, "suv"),
                           ("Explorer", 15, "suv"), ("Mustang", 8, "sports"),
                           ("Focus", 8, "sedan"), ("Fusion", 8, "sedan"), ("Ranger", 6, "truck"),
                           ("Bronco", 4, "suv"), ("Mustang Mach-E", 1.5, "ev"),
                           ("GT", 0.05, "sports"))),
    Make("Chevrolet", 11.0, _m(("Silverado", 30, "truck"), ("Equinox", 18, "suv"),
                                ("Malibu", 14, "sedan"), ("Tahoe", 9, "suv"),
                                ("Camaro", 5, "sports"), ("Traverse", 8, "suv"),
                                ("Colorado", 6, "truck"), ("Bolt", 2, "ev"),
                                ("Corvette", 1.5, "sports"), ("Impala", 4, "sedan"))),
    Make("Honda", 10.0, _m(("Civic", 30, "sedan"), ("Accord", 28, "sedan"), ("CR-V", 25, "suv"),
                            ("Pilot", 8, "suv"), ("Odyssey", 6, "van"), ("HR-V", 4, "suv"),
                            ("Ridgeline", 2, "truck"))),
    Make("Nissan", 7.0, _m(("Altima", 30, "sedan"), ("Rogue", 28, "suv"), ("Sentra", 20, "sedan"),
                            ("Pathfinder", 8, "suv"), ("Frontier", 6, "truck"), ("Leaf", 3, "ev"),
                            ("370Z", 1, "sports"), ("GT-R", 0.2, "sports"))),
    Make("Hyundai", 5.0, _m(("Elantra", 30, "sedan"), ("Tucson", 25, "suv"),
                             ("Sonata", 20, "sedan"), ("Santa Fe", 15, "suv"), ("Kona", 8, "suv"),
                             ("Ioniq 5", 2, "ev"))),
    Make("Kia", 4.0, _m(("Forte", 25, "sedan"), ("Sorento", 22, "suv"), ("Sportage", 25, "suv"),
                         ("Soul", 15, "sedan"), ("Telluride", 10, "suv"), ("EV6", 2, "ev"),
                         ("Stinger", 1, "sports"))),
    Make("Jeep", 4.0, _m(("Wrangler", 35, "suv"), ("Grand Cherokee", 35, "suv"),
                          ("Cherokee", 20, "suv"), ("Gladiator", 8, "truck"),
                          ("Compass", 10, "suv"))),
    Make("Ram", 3.5, _m(("1500", 70, "truck"), ("2500", 20, "truck"), ("ProMaster", 10, "van"))),
    Make("Subaru", 3.5, _m(("Outback", 35, "suv"), ("Forester", 30, "suv"),
                            ("Crosstrek", 20, "suv"), ("Impreza", 10, "sedan"),
                            ("WRX", 5, "sports"))),
    Make("GMC", 2.5, _m(("Sierra", 55, "truck"), ("Acadia", 20, "suv"), ("Yukon", 20, "suv"),
                         ("Canyon", 5, "truck"))),
    Make("Tesla", 2.5, _m(("Model 3", 45, "ev"), ("Model Y", 45, "ev"), ("Model S", 6, "ev"),
                           ("Model X", 4, "ev"))),
    Make("BMW", 2.5, _m(("3 Series", 35, "luxury"), ("X3", 25, "luxury"), ("X5", 25, "luxury"),
                         ("M3", 5, "sports"), ("i4", 5, "ev"))),
    Make("Mercedes-Benz", 2.2, _m(("C-Class", 35, "luxury"), ("GLE", 25, "luxury"),
                                   ("E-Class", 20, "luxury"), ("GLC", 20, "luxury"))),
    Make("Volkswagen", 2.0, _m(("Jetta", 35, "sedan"), ("Tiguan", 30, "suv"),
                                ("Atlas", 15, "suv"), ("Golf", 15, "sedan"), ("ID.4", 5, "ev"))),
    Make("Lexus", 1.8, _m(("RX", 45, "luxury"), ("ES", 35, "luxury"), ("NX", 20, "luxury"))),
    Make("Mazda", 1.8, _m(("CX-5", 50, "suv"), ("Mazda3", 30, "sedan"), ("CX-9", 10, "suv"),
                           ("MX-5 Miata", 10, "sports"))),
    Make("Dodge", 1.5, _m(("Charger", 45, "sports"), ("Durango", 30, "suv"),
                           ("Challenger", 25, "sports"))),
    Make("Audi", 1.2, _m(("A4", 40, "luxury"), ("Q5", 45, "luxury"), ("e-tron", 10, "ev"),
                          ("R8", 1, "sports"))),
    Make("Acura", 0.8, _m(("MDX", 50, "luxury"), ("RDX", 40, "luxury"), ("TLX", 10, "luxury"))),
    Make("Buick", 0.8, _m(("Encore", 50, "suv"), ("Enclave", 50, "suv"))),
    Make("Cadillac", 0.7, _m(("Escalade", 50, "luxury"), ("XT5", 50, "luxury"))),
    Make("Chrysler", 0.6, _m(("Pacifica", 80, "van"), ("300", 20, "sedan"))),
    Make("Volvo", 0.6, _m(("XC90", 50, "luxury"), ("XC60", 50, "luxury"))),
    Make("Infiniti", 0.4, _m(("QX60", 60, "luxury"), ("Q50", 40, "luxury"))),
    Make("Lincoln", 0.4, _m(("Navigator", 50, "luxury"), ("Aviator", 50, "luxury"))),
    Make("Mitsubishi", 0.4, _m(("Outlander", 60, "suv"), ("Mirage", 40, "sedan"))),
    Make("Mini", 0.25, _m(("Cooper", 100, "sedan"),)),
    Make("Porsche", 0.2, _m(("911", 40, "sports"), ("Cayenne", 40, "luxury"),
                             ("Macan", 20, "luxury"))),
    Make("Land Rover", 0.2, _m(("Range Rover", 60, "luxury"), ("Defender", 40, "suv"))),
    Make("Genesis", 0.1, _m(("G70", 50, "luxury"), ("GV80", 50, "luxury"))),
    Make("Rivian", 0.05, _m(("R1T", 100, "ev"),)),
    Make("Fiat", 0.05, _m(("500", 100, "sedan"),)),
    Make("Alfa Romeo", 0.04, _m(("Giulia", 100, "sports"),)),
    Make("Jaguar", 0.04, _m(("F-Pace", 100, "luxury"),)),
    Make("Pontiac", 0.03, _m(("G6", 50, "sedan"), ("Firebird", 50, "sports"))),
    Make("Scion", 0.03, _m(("tC", 100, "sedan"),)),
    Make("Maserati", 0.02, _m(("Ghibli", 100, "luxury"),)),
    Make("Polestar", 0.02, _m(("Polestar 2", 100, "ev"),)),
    Make("Suzuki", 0.02, _m(("SX4", 100, "sedan"),)),
    Make("Hummer", 0.02, _m(("H2", 100, "suv"),)),
    Make("Saturn", 0.02, _m(("Vue", 100, "suv"),)),
    Make("Mercury", 0.02, _m(("Grand Marquis", 100, "sedan"),)),
    Make("Saab", 0.01, _m(("9-3", 100, "sedan"),)),
    Make("Smart", 0.01, _m(("Fortwo", 100, "sedan"),)),
    Make("Lotus", 0.005, _m(("Elise", 100, "sports"),)),
    Make("Ferrari", 0.004, _m(("488", 100, "sports"),)),
)  # fmt: skip
DISCONTINUED = frozenset({"Pontiac", "Scion", "Saturn", "Mercury", "Saab", "Hummer", "Smart"})
KINDS: tuple[str, ...] = ("sedan", "suv", "truck", "van", "sports", "ev", "luxury")
KIND_EFFECT: tuple[float, ...] = (0.0, 0.1, 0.1, 0.2, -0.3, 0.25, 0.2)

USAGE: tuple[Cat, ...] = (
    Cat("commute", 0.52, 0.3),
    Cat("pleasure", 0.26, -0.35),
    Cat("business", 0.10, 0.45),
    Cat("rideshare", 0.06, 0.15),
    Cat("farm", 0.025, -0.4),
    Cat("delivery", 0.015, 0.0),
    Cat("student", 0.004, -0.3),
    Cat("show", 0.0008, -0.5),
    Cat("racing", 0.0003, -1.0),
)
USAGE_MILES: tuple[float, ...] = (1.1, 0.6, 1.6, 2.6, 0.8, 2.2, 0.9, 0.05, 0.1)

PROPERTY_TYPES: tuple[Cat, ...] = (
    Cat("single_family", 0.56, 0.0),
    Cat("condo", 0.13, 0.25),
    Cat("townhouse", 0.10, 0.15),
    Cat("multi_family", 0.06, -0.1),
    Cat("mobile_home", 0.05, -0.8),
    Cat("duplex", 0.035, 0.0),
    Cat("cabin", 0.012, -0.3),
    Cat("farmhouse", 0.01, -0.2),
    Cat("co-op", 0.006, 0.1),
    Cat("log_home", 0.002, -0.3),
    Cat("tiny_home", 0.0008, -0.5),
    Cat("houseboat", 0.0003, -1.0),
    Cat("castle", 0.0001, -0.5),
)
# Median square footage, sigma of log square footage and value factor, per property type.
PROPERTY_SIZE: tuple[tuple[float, float, float], ...] = (
    (1900, 0.33, 1.0), (1050, 0.30, 1.1), (1500, 0.28, 1.0), (3200, 0.30, 0.85),
    (1100, 0.25, 0.35), (2200, 0.25, 0.9), (1000, 0.35, 0.8), (2400, 0.35, 0.7),
    (900, 0.30, 1.2), (1800, 0.30, 0.9), (300, 0.30, 0.8), (700, 0.30, 0.6), (12000, 0.40, 2.0),
)  # fmt: skip
PROP_CONDO = (1, 2, 8)  # types whose addresses usually carry a unit number
PROP_MOBILE = 4

CONSTRUCTION: tuple[Cat, ...] = (
    Cat("frame", 0.52, 0.0),
    Cat("masonry", 0.18, 0.3),
    Cat("brick_veneer", 0.12, 0.2),
    Cat("stucco", 0.06, 0.05),
    Cat("concrete", 0.04, 0.3),
    Cat("steel", 0.015, 0.1),
    Cat("manufactured", 0.005, -0.3),
    Cat("log", 0.008, -0.5),
    Cat("adobe", 0.004, -0.2),
    Cat("stone", 0.003, 0.0),
    Cat("icf", 0.001, 0.2),
    Cat("straw_bale", 0.0003, -0.8),
    Cat("cob", 0.0002, -0.8),
)
CONSTRUCTION_MANUFACTURED = 6
CONSTRUCTION_FRAME = 0

ROOFS: tuple[Cat, ...] = (
    Cat("asphalt_shingle", 0.60, 0.0),
    Cat("architectural_shingle", 0.10, 0.15),
    Cat("metal", 0.09, 0.35),
    Cat("clay_tile", 0.05, 0.2),
    Cat("concrete_tile", 0.04, 0.2),
    Cat("flat_built_up", 0.035, -0.2),
    Cat("wood_shake", 0.03, -0.7),
    Cat("slate", 0.02, 0.1),
    Cat("tpo_membrane", 0.015, 0.0),
    Cat("rubber_membrane", 0.01, -0.1),
    Cat("solar_tiles", 0.002, 0.3),
    Cat("green_roof", 0.0005, -0.3),
    Cat("rolled_roofing", 0.0003, -0.4),
    Cat("thatch", 0.0002, -1.2),
    Cat("copper", 0.0001, 0.2),
)
ROOF_WOOD_SHAKE = 6

SECURITY: tuple[Phrase, ...] = (
    Phrase(("alarm", "alarm system", "burglar alarm", "alarm sys"), 3.0, 0.15),
    Phrase(("monitored alarm", "ADT monitored", "central station alarm", "monitored alrm"),
            1.5, 0.5),
    Phrase(("deadbolt", "deadbolts", "dead bolt", "deadbolt locks"), 4.0, 0.1),
    Phrase(("smoke detector", "smoke detectors", "smoke alarm", "smoke dectector"), 4.0, 0.15),
    Phrase(("fire sprinklers", "sprinkler system", "sprinklers"), 0.8, 0.35),
    Phrase(("security camera", "cameras", "Ring doorbell", "CCTV"), 2.0, 0.1),
    Phrase(("gated community", "gated", "gated comm."), 0.6, 0.2),
    Phrase(("fire extinguisher", "extinguisher"), 1.5, 0.05),
    Phrase(("smart lock", "smart locks"), 0.8, 0.05),
    Phrase(("motion lights", "motion sensor lights"), 0.8, 0.0),
    Phrase(("dog", "guard dog", "big dog"), 0.6, -0.05),
    Phrase(("storm shutters", "hurricane shutters"), 0.4, 0.3),
    Phrase(("CO detector", "carbon monoxide detector"), 1.0, 0.1),
    Phrase(("safe room", "panic room"), 0.02, 0.0),
)  # fmt: skip
NONE_WORDS: tuple[str, ...] = ("none", "None", "n/a", "no", "NONE", "nothing")

COVERAGE_TYPES: tuple[Cat, ...] = (
    Cat("individual", 0.46, 0.0),
    Cat("family", 0.27, 0.15),
    Cat("couple", 0.10, 0.1),
    Cat("individual_plus_children", 0.06, 0.1),
    Cat("short_term", 0.045, -0.35),
    Cat("catastrophic", 0.015, -0.2),
    Cat("medicare_supplement", 0.03, 0.0),
    Cat("dental_vision", 0.01, -0.4),
    Cat("hospital_indemnity", 0.003, -0.3),
    Cat("cobra", 0.002, -0.5),
    Cat("critical_illness", 0.001, -0.3),
    Cat("sharing_ministry", 0.0004, -0.6),
)
COV_INDIVIDUAL, COV_FAMILY, COV_MEDICARE = 0, 1, 6
COV_SHARED = (1, 2, 3)  # plans that cover more than one person
TOBACCO: tuple[Cat, ...] = (
    Cat("no", 0.78, 0.0),
    Cat("yes", 0.14, -0.4),
    Cat("former", 0.06, -0.1),
    Cat("occasional", 0.015, -0.2),
    Cat("vape_only", 0.004, -0.2),
    Cat("chewing_tobacco", 0.001, -0.3),
    Cat("hookah", 0.0002, -0.2),
    Cat("nicotine_patch", 0.0001, 0.0),
)
INSURERS: tuple[Cat, ...] = (
    Cat("none", 0.30, 0.45),
    Cat("Blue Cross Blue Shield", 0.16, 0.0),
    Cat("UnitedHealthcare", 0.10, 0.0),
    Cat("Aetna", 0.07, 0.05),
    Cat("Cigna", 0.06, 0.05),
    Cat("Humana", 0.05, -0.05),
    Cat("Kaiser Permanente", 0.05, -0.2),
    Cat("Ambetter", 0.05, 0.1),
    Cat("Medicaid", 0.04, -0.5),
    Cat("Anthem", 0.03, 0.0),
    Cat("Oscar", 0.03, 0.1),
    Cat("Molina", 0.03, -0.1),
    Cat("Highmark", 0.002, 0.0),
    Cat("Harvard Pilgrim", 0.002, 0.0),
    Cat("Priority Health", 0.0015, 0.0),
    Cat("Medica", 0.0015, 0.0),
    Cat("Wellmark", 0.0015, 0.0),
    Cat("Premera", 0.0012, 0.0),
    Cat("Tufts Health Plan", 0.001, 0.0),
    Cat("Geisinger", 0.0008, 0.0),
    Cat("Bright Health", 0.0004, 0.2),
    Cat("Friday Health", 0.0003, 0.2),
    Cat("Sidecar Health", 0.0002, 0.0),
)
EMPLOYMENT: tuple[Cat, ...] = (
    Cat("employed_full_time", 0.42, -0.25),
    Cat("employed_part_time", 0.12, 0.15),
    Cat("self_employed", 0.14, 0.5),
    Cat("unemployed", 0.09, -0.3),
    Cat("retired", 0.08, -0.1),
    Cat("student", 0.05, -0.4),
    Cat("contractor", 0.04, 0.45),
    Cat("disabled", 0.03, -0.2),
    Cat("homemaker", 0.02, 0.0),
    Cat("seasonal", 0.015, 0.1),
    Cat("early_retired", 0.003, 0.3),
    Cat("military_reserve", 0.0003, 0.0),
    Cat("sabbatical", 0.0004, 0.0),
)
# Median income of each employment status (health leads).
EMPLOYMENT_INCOME: tuple[float, ...] = (
    62000, 26000, 58000, 9000, 38000, 12000, 48000, 16000, 20000, 28000, 70000, 45000, 55000,
)  # fmt: skip
EMP_UNEMPLOYED, EMP_RETIRED, EMP_STUDENT = 3, 4, 5
EMP_SELF = (2, 6)  # self-employed and contractors

CONDITIONS: tuple[Phrase, ...] = (
    Phrase(("diabetes", "type 2 diabetes", "diabetic", "T2D", "diabetis"), 3.0, 0.4),
    Phrase(("hypertension", "high blood pressure", "HBP", "htn", "hypertention"), 4.0, 0.35),
    Phrase(("asthma", "asthma (mild)", "athsma"), 2.5, 0.25),
    Phrase(("high cholesterol", "cholesterol", "hyperlipidemia"), 3.0, 0.15),
    Phrase(("depression", "depresion", "major depression"), 2.0, 0.1),
    Phrase(("anxiety", "anxiety disorder", "GAD"), 2.0, 0.1),
    Phrase(("COPD", "emphysema"), 0.8, -0.4),
    Phrase(("heart disease", "CAD", "heart condition", "afib"), 1.0, -0.4),
    Phrase(("cancer (remission)", "breast cancer survivor", "cancer"), 0.6, -0.5),
    Phrase(("arthritis", "rheumatoid arthritis", "osteoarthritis"), 1.5, 0.05),
    Phrase(("sleep apnea", "OSA", "sleep apnoea"), 1.2, 0.1),
    Phrase(("hypothyroidism", "thyroid", "hashimotos"), 1.2, 0.1),
    Phrase(("pregnant", "pregnancy", "expecting"), 0.6, 0.9),
    Phrase(("lupus",), 0.05, -0.3),
    Phrase(("crohn's disease", "crohns"), 0.05, 0.0),
    Phrase(("multiple sclerosis",), 0.04, -0.3),
    Phrase(("hepatitis c", "hep c"), 0.03, -0.3),
    Phrase(("kidney disease", "CKD"), 0.1, -0.4),
)  # fmt: skip
COND_PREGNANT = 12

POLICY_TYPES: tuple[Cat, ...] = (
    Cat("term", 0.60, 0.3),
    Cat("whole", 0.16, -0.1),
    Cat("universal", 0.09, -0.2),
    Cat("final_expense", 0.06, 0.1),
    Cat("indexed_universal", 0.05, -0.15),
    Cat("variable_universal", 0.025, -0.4),
    Cat("guaranteed_universal", 0.01, 0.0),
    Cat("return_of_premium_term", 0.003, -0.2),
    Cat("survivorship", 0.0015, -0.3),
    Cat("accidental_death", 0.0004, -0.5),
    Cat("joint_first_to_die", 0.0003, 0.0),
    Cat("key_person", 0.0002, 0.2),
)
POL_TERM, POL_FINAL, POL_ROP = 0, 3, 7
TERM_LENGTHS: tuple[int, ...] = (10, 15, 20, 25, 30, 35, 40)
TERM_WEIGHTS: tuple[float, ...] = (0.17, 0.12, 0.38, 0.08, 0.22, 0.02, 0.01)
SMOKER: tuple[Cat, ...] = (
    Cat("no", 0.84, 0.0),
    Cat("yes", 0.12, -0.6),
    Cat("former", 0.03, -0.1),
    Cat("occasional", 0.008, -0.3),
    Cat("vape", 0.0015, -0.3),
    Cat("cigars_only", 0.0008, -0.2),
    Cat("pipe", 0.0002, -0.2),
    Cat("chewing_tobacco", 0.0002, -0.3),
)
HEALTH_CLASSES: tuple[Cat, ...] = (
    Cat("preferred_plus", 0.0, 0.7),
    Cat("preferred", 0.0, 0.45),
    Cat("standard_plus", 0.0, 0.15),
    Cat("standard", 0.0, 0.0),
    Cat("substandard", 0.0, -0.7),
    Cat("table_rated", 0.0, -0.9),
    Cat("declined_previously", 0.0, -1.3),
    Cat("super_preferred", 0.0, 0.8),
)
MARITAL: tuple[Cat, ...] = (
    Cat("married", 0.52, 0.35),
    Cat("single", 0.28, 0.0),
    Cat("divorced", 0.10, -0.1),
    Cat("widowed", 0.04, -0.2),
    Cat("domestic_partner", 0.04, 0.2),
    Cat("separated", 0.02, -0.2),
    Cat("civil_union", 0.0008, 0.2),
    Cat("engaged", 0.0003, 0.3),
    Cat("annulled", 0.0001, 0.0),
)
MARITAL_YOUNG: tuple[float, ...] = (0.30, 0.60, 0.03, 0.002, 0.06, 0.01, 0.0008, 0.0015, 0.0001)

AUTO_STATE: dict[str, float] = {
    "TX": 0.35, "CA": 0.2, "GA": 0.2, "AZ": 0.15, "NC": 0.2, "OH": 0.1, "FL": -0.45,
    "MI": -0.5, "NY": -0.15, "NJ": -0.2, "LA": -0.4,
}  # fmt: skip
HOME_STATE: dict[str, float] = {
    "FL": -0.8, "CA": -0.45, "LA": -0.6, "TX": -0.15, "OH": 0.3, "PA": 0.25, "NC": 0.2,
    "WI": 0.25, "MN": 0.2, "IN": 0.2, "CO": -0.1, "OK": -0.2,
}  # fmt: skip
HEALTH_STATE: dict[str, float] = {
    "TX": 0.35, "FL": 0.4, "GA": 0.3, "NC": 0.2, "NY": -0.2, "MA": -0.5, "NJ": -0.1,
    "AZ": 0.15,
}  # fmt: skip
LIFE_STATE: dict[str, float] = {
    "NY": -0.35, "NJ": 0.15, "CA": 0.1, "TX": 0.2, "GA": 0.1, "PA": 0.15, "OH": 0.2,
    "IL": 0.1,
}  # fmt: skip
COASTAL = frozenset({"FL", "LA", "TX", "SC", "NC"})
# Price per square foot of housing by state (USD); others use the default.
PRICE_PER_SQFT: dict[str, float] = {
    "CA": 650, "NY": 480, "MA": 520, "WA": 420, "CO": 380, "NJ": 330, "FL": 280, "TX": 190,
    "AZ": 280, "IL": 220, "PA": 200, "OH": 150, "MI": 160, "GA": 210, "NC": 230, "TN": 220,
    "NV": 280, "OR": 350, "MN": 230, "LA": 170, "MO": 170, "IN": 150, "KY": 160, "OK": 140,
    "NM": 220, "UT": 350, "WI": 190, "AL": 150, "MD": 290, "HI": 700,
}  # fmt: skip
DEFAULT_PRICE_PER_SQFT = 200.0
