"""Synthetic insurance leads with a known conversion rule, for demos and tests.

``generate(vertical, rows, seed)`` simulates ``rows`` leads of one vertical (``auto``,
``home``, ``health`` or ``life``) and ``write_csv`` writes them as a training CSV. The
same ``(vertical, rows, seed)`` always gives byte-identical output; everything is drawn
from one ``numpy.random.Generator`` seeded with ``[seed, <vertical salt>]``, so two
verticals with the same seed are independent of each other.

CSV layout (UTF-8, comma delimited, LF line ends, quoted only where needed):

- Header first. The columns are the vertical's configured features in model order
  (numerical, then categorical, then text, as in ``config/models.yaml``) followed by the
  target ``converted``.
- Numerical cells are plain decimals: integers without a decimal point (``45``,
  ``385000``) and floats with at most two decimals (``27.4``, ``31.25``). Every value
  lies inside the feature's configured ``[min, max]``.
- Categorical cells are short labels (``toyota``-style words or ``snake_case``) with a
  long tail of rare values and messy casing on a few percent of rows.
- Text cells are free text as a web form would collect it: random casing, stray and
  doubled spaces, abbreviations and typos (``" software  engineer"``, ``"SW engineer"``).
  Locations and addresses always carry the two-letter state code as its own token.
- ``""`` is a missing value. Required features (auto/health/life ``age``, home
  ``square_footage``) are never missing; the others are missing on 2-15% of rows.
- ``converted`` is ``"1"`` or ``"0"``: a Bernoulli draw from ``sigmoid(logit)`` of a
  documented latent score (see ``docs/synthetic-data.md``), so about 25-40% of leads
  convert and a model can learn a real, non-linear signal.

Columns by vertical:

- auto: ``age, driving_years, vehicle_age, annual_mileage, vehicle_make, vehicle_model,
  usage_type, occupation, location, converted``
- home: ``property_age, square_footage, property_value, construction_type, roof_type,
  property_type, address, security_features, converted``
- health: ``age, bmi, household_size, annual_income, coverage_type, tobacco_use,
  current_insurer, employment_status, pre_existing_conditions, location, converted``
- life: ``age, coverage_amount, term_years, annual_income, policy_type, smoker,
  health_class, marital_status, occupation, location, converted``
"""

from __future__ import annotations

import csv
import operator
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

SYNTH_VERTICALS: tuple[str, ...] = ("auto", "home", "health", "life")
TARGET_COLUMN = "converted"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

# Salts keep the streams of the verticals apart for the same seed; never renumber them.
_SALT: dict[str, int] = {"auto": 1, "home": 2, "health": 3, "life": 4}
_CASE_MESS_RATE = 0.03  # share of categorical cells with odd casing


# ----------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------


class _Cat(NamedTuple):
    """A category label, its relative frequency and its effect on the conversion logit."""

    label: str
    weight: float
    effect: float = 0.0


class _Model(NamedTuple):
    """A vehicle model: label, frequency within its make, and body class."""

    label: str
    weight: float
    kind: str


class _Make(NamedTuple):
    """A vehicle make with its models."""

    label: str
    weight: float
    models: tuple[_Model, ...]


class _City(NamedTuple):
    """A US city: display name, state code, first ZIP, ZIP span, frequency, misspellings."""

    name: str
    state: str
    zip_base: int
    zip_span: int
    weight: float
    typos: tuple[str, ...] = ()


class _Occupation(NamedTuple):
    """An occupation as written on forms (first variant canonical) and its effects."""

    variants: tuple[str, ...]
    weight: float
    auto: float
    life: float


class _Phrase(NamedTuple):
    """An item of a list-valued text field (variants as written) and its effect."""

    variants: tuple[str, ...]
    weight: float
    effect: float


_CITIES: tuple[_City, ...] = (
    _City("New York", "NY", 10001, 280, 8.0, ("New York City", "NYC", "new york")),
    _City("Brooklyn", "NY", 11201, 40, 3.0, ("Brooklin",)),
    _City("Buffalo", "NY", 14201, 30, 0.8),
    _City("Los Angeles", "CA", 90001, 90, 5.0, ("Los Angelas", "los angeles")),
    _City("San Diego", "CA", 92101, 80, 2.0, ("San Deigo",)),
    _City("San Francisco", "CA", 94102, 30, 1.5, ("San Fransisco", "SF")),
    _City("San Jose", "CA", 95110, 30, 1.3),
    _City("Sacramento", "CA", 95814, 30, 0.9, ("Sacramneto",)),
    _City("Fresno", "CA", 93701, 30, 0.7),
    _City("Houston", "TX", 77002, 90, 3.0, ("Huston",)),
    _City("Dallas", "TX", 75201, 50, 2.0),
    _City("Austin", "TX", 78701, 50, 1.5),
    _City("San Antonio", "TX", 78201, 50, 2.0, ("San Antonia",)),
    _City("El Paso", "TX", 79901, 30, 0.8),
    _City("Miami", "FL", 33101, 90, 1.5, ("Miama",)),
    _City("Orlando", "FL", 32801, 30, 1.0),
    _City("Tampa", "FL", 33601, 40, 1.0),
    _City("Jacksonville", "FL", 32099, 200, 1.2, ("Jacksonvile",)),
    _City("Chicago", "IL", 60601, 60, 3.5, ("Chicgo",)),
    _City("Springfield", "IL", 62701, 10, 0.3),
    _City("Phoenix", "AZ", 85001, 50, 2.2, ("Pheonix",)),
    _City("Tucson", "AZ", 85701, 50, 0.7),
    _City("Philadelphia", "PA", 19102, 50, 2.0, ("Philadephia", "Philly")),
    _City("Pittsburgh", "PA", 15201, 30, 0.8, ("Pittsburg",)),
    _City("Columbus", "OH", 43201, 30, 1.2),
    _City("Cleveland", "OH", 44101, 30, 0.8),
    _City("Cincinnati", "OH", 45201, 30, 0.7, ("Cincinatti",)),
    _City("Detroit", "MI", 48201, 30, 1.0),
    _City("Grand Rapids", "MI", 49501, 20, 0.5),
    _City("Atlanta", "GA", 30301, 40, 1.5, ("Atlana",)),
    _City("Charlotte", "NC", 28201, 30, 1.2),
    _City("Raleigh", "NC", 27601, 20, 0.7),
    _City("Seattle", "WA", 98101, 40, 1.2, ("Seatle",)),
    _City("Spokane", "WA", 99201, 20, 0.4),
    _City("Denver", "CO", 80201, 40, 1.2),
    _City("Boston", "MA", 2108, 20, 1.0),
    _City("Newark", "NJ", 7101, 10, 0.6),
    _City("Jersey City", "NJ", 7302, 10, 0.5),
    _City("Trenton", "NJ", 8601, 10, 0.3),
    _City("Baltimore", "MD", 21201, 30, 0.9),
    _City("Nashville", "TN", 37201, 30, 1.0, ("Nashvile",)),
    _City("Memphis", "TN", 38101, 30, 0.8),
    _City("Portland", "OR", 97201, 30, 0.9),
    _City("Las Vegas", "NV", 89101, 50, 1.0, ("Las Vagas",)),
    _City("Minneapolis", "MN", 55401, 20, 0.8),
    _City("New Orleans", "LA", 70112, 30, 0.6),
    _City("Kansas City", "MO", 64101, 30, 0.7),
    _City("St. Louis", "MO", 63101, 30, 0.6, ("Saint Louis", "St Louis")),
    _City("Indianapolis", "IN", 46201, 30, 1.0, ("Indianpolis",)),
    _City("Louisville", "KY", 40201, 30, 0.6),
    _City("Oklahoma City", "OK", 73101, 30, 0.7),
    _City("Albuquerque", "NM", 87101, 20, 0.5, ("Albuquerqe",)),
    _City("Salt Lake City", "UT", 84101, 20, 0.5, ("SLC",)),
    _City("Milwaukee", "WI", 53201, 20, 0.6),
    _City("Birmingham", "AL", 35201, 20, 0.5),
    _City("Richmond", "VA", 23218, 10, 0.3),
    _City("Virginia Beach", "VA", 23450, 10, 0.3),
    _City("Columbia", "SC", 29201, 10, 0.2),
    _City("Hartford", "CT", 6101, 10, 0.15),
    _City("Omaha", "NE", 68101, 20, 0.2),
    _City("Des Moines", "IA", 50301, 10, 0.15),
    _City("Little Rock", "AR", 72201, 10, 0.15),
    _City("Wichita", "KS", 67201, 10, 0.15),
    _City("Boise", "ID", 83701, 10, 0.2),
    _City("Honolulu", "HI", 96801, 20, 0.2),
    _City("Jackson", "MS", 39201, 10, 0.1),
    _City("Providence", "RI", 2901, 5, 0.06),
    _City("Portland", "ME", 4101, 5, 0.05),
    _City("Wilmington", "DE", 19801, 5, 0.05),
    _City("Manchester", "NH", 3101, 5, 0.04),
    _City("Sioux Falls", "SD", 57101, 5, 0.04),
    _City("Fargo", "ND", 58102, 5, 0.04),
    _City("Burlington", "VT", 5401, 5, 0.03),
    _City("Missoula", "MT", 59801, 5, 0.03),
    _City("Charleston", "WV", 25301, 5, 0.03),
    _City("Cheyenne", "WY", 82001, 5, 0.02),
    _City("Juneau", "AK", 99801, 3, 0.01),
)

# How a location is typed: (template, weight). {c} city, {s} state code, {z} ZIP.
_LOCATION_FORMATS: tuple[tuple[str, float], ...] = (
    ("{c}, {s} {z}", 0.30),
    ("{c}, {s}", 0.32),
    ("{cl} {sl}", 0.12),
    ("{c} {s} {z}", 0.07),
    ("{c},{s}", 0.05),
    ("{c}, {s}, USA", 0.04),
    ("{cu}, {s} {z}", 0.04),
    ("{c}, {sl}", 0.06),
)

_STREETS: tuple[str, ...] = (
    "Main", "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park",
    "2nd", "3rd", "1st", "Sunset", "Highland", "Lincoln", "Jefferson", "Madison", "River",
    "Church", "Spring", "Walnut", "Chestnut", "Willow", "Meadow", "Forest", "Ridge",
    "Franklin", "Center", "Mill",
)  # fmt: skip
_SUFFIXES: tuple[tuple[str, ...], ...] = (
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

_OCCUPATIONS: tuple[_Occupation, ...] = (
    _Occupation(("Software Engineer", "software engineer", "SW engineer", "Sofware Engineer",
                 "software eng", "Software Developer", "sr software engineer"), 6.0, 0.45, 0.5),
    _Occupation(("Registered Nurse", "RN", "nurse", "Regsitered Nurse",
                 "registered nurse (RN)", "LPN"), 6.0, 0.4, 0.45),
    _Occupation(("Teacher", "school teacher", "teacher - elementary", "Techer", "HS teacher",
                 "educator"), 6.0, 0.4, 0.4),
    _Occupation(("Accountant", "CPA", "acountant", "Staff Accountant", "bookkeeper"),
                3.5, 0.35, 0.45),
    _Occupation(("Sales Representative", "sales rep", "Sales", "salesman", "Sales Rep.",
                 "account executive"), 6.0, 0.05, 0.1),
    _Occupation(("Truck Driver", "trucker", "CDL driver", "truck drvier", "OTR truck driver"),
                4.0, 0.15, -0.3),
    _Occupation(("Construction Worker", "construction", "laborer", "Constrution worker",
                 "general labor"), 5.0, -0.15, -0.45),
    _Occupation(("Retail Associate", "cashier", "retail", "Store Clerk", "retail sales"),
                6.0, -0.25, -0.2),
    _Occupation(("Student", "college student", "Grad Student", "studnet",
                 "full time student"), 5.0, -0.6, -0.6),
    _Occupation(("Retired", "Retiree", "ret.", "retired teacher"), 8.0, -0.2, -0.3),
    _Occupation(("Unemployed", "not employed", "none", "between jobs"), 4.0, -0.9, -0.9),
    _Occupation(("Manager", "office manager", "Mgr", "Project Manager", "manger",
                 "operations mgr"), 7.0, 0.25, 0.35),
    _Occupation(("Physician", "Doctor", "Phyisician", "family physician", "surgeon"),
                1.5, 0.35, 0.6),
    _Occupation(("Attorney", "Lawyer", "atty", "attorney at law"), 1.5, 0.2, 0.55),
    _Occupation(("Active Duty Military", "Military", "US Army", "Navy", "USMC", "Air Force",
                 "soldier"), 2.0, 0.7, 0.4),
    _Occupation(("Police Officer", "police", "Law Enforcement", "cop", "Sheriff Deputy"),
                1.5, 0.3, 0.1),
    _Occupation(("Electrician", "Elecrician", "journeyman electrician"), 2.0, 0.1, 0.0),
    _Occupation(("Cook", "Chef", "Line Cook", "Sous Chef", "kitchen staff"), 3.0, -0.2, -0.2),
    _Occupation(("Real Estate Agent", "realtor", "RE agent", "Realtor"), 1.5, 0.1, 0.2),
    _Occupation(("Business Owner", "self employed", "Self-Employed", "owner", "entrepreneur",
                 "small business owner"), 4.0, 0.2, 0.45),
    _Occupation(("Airline Pilot", "pilot", "Commercial Pilot"), 0.4, 0.2, -0.5),
    _Occupation(("Homemaker", "stay at home parent", "SAHM", "housewife",
                 "stay-at-home mom"), 3.0, -0.1, 0.25),
    _Occupation(("Mechanic", "auto mechanic", "mechanic tech"), 2.0, 0.0, -0.1),
    _Occupation(("Plumber", "plumber apprentice"), 1.0, 0.05, 0.0),
    _Occupation(("Farmer", "rancher", "farm owner"), 0.8, -0.1, -0.2),
    _Occupation(("Firefighter", "fire fighter", "FDNY"), 0.7, 0.3, -0.2),
    _Occupation(("Pharmacist", "PharmD"), 0.6, 0.3, 0.5),
    _Occupation(("Professor", "college professor", "Prof."), 0.5, 0.3, 0.5),
    _Occupation(("Social Worker", "case worker", "social wrker"), 1.0, 0.1, 0.1),
    _Occupation(("Rideshare Driver", "Uber driver", "lyft driver", "gig driver"),
                1.2, 0.1, -0.3),
    _Occupation(("Pastor", "clergy", "Minister"), 0.15, 0.2, 0.3),
    _Occupation(("Veterinarian", "vet", "DVM"), 0.15, 0.3, 0.5),
    _Occupation(("Dental Hygienist", "hygienist"), 0.3, 0.3, 0.3),
    _Occupation(("Barber", "hair stylist"), 0.3, 0.0, 0.0),
    _Occupation(("Commercial Fisherman", "fisherman"), 0.05, -0.3, -1.0),
    _Occupation(("Logger", "lumberjack"), 0.04, -0.2, -1.0),
    _Occupation(("Coal Miner", "miner"), 0.04, -0.2, -1.0),
    _Occupation(("Actuary",), 0.05, 0.3, 0.8),
    _Occupation(("Air Traffic Controller", "ATC"), 0.02, 0.3, 0.3),
    _Occupation(("Stunt Performer", "stuntman"), 0.005, -0.5, -1.5),
)  # fmt: skip
_OCC_STUDENT = 8
_OCC_RETIRED = 9


def _m(*models: tuple[str, float, str]) -> tuple[_Model, ...]:
    """Build a make's model table from ``(label, weight, body class)`` triples."""
    return tuple(_Model(*m) for m in models)


_MAKES: tuple[_Make, ...] = (
    _Make("Toyota", 14.0, _m(("Camry", 25, "sedan"), ("Corolla", 22, "sedan"),
                             ("RAV4", 22, "suv"), ("Tacoma", 10, "truck"),
                             ("Highlander", 9, "suv"), ("Prius", 6, "sedan"),
                             ("Tundra", 4, "truck"), ("Sienna", 3, "van"), ("4Runner", 4, "suv"),
                             ("Supra", 0.4, "sports"), ("Land Cruiser", 0.3, "suv"))),
    _Make("Ford", 12.0, _m(("F-150", 35, "truck"), ("Escape", 15, "suv"),
                           ("Explorer", 15, "suv"), ("Mustang", 8, "sports"),
                           ("Focus", 8, "sedan"), ("Fusion", 8, "sedan"), ("Ranger", 6, "truck"),
                           ("Bronco", 4, "suv"), ("Mustang Mach-E", 1.5, "ev"),
                           ("GT", 0.05, "sports"))),
    _Make("Chevrolet", 11.0, _m(("Silverado", 30, "truck"), ("Equinox", 18, "suv"),
                                ("Malibu", 14, "sedan"), ("Tahoe", 9, "suv"),
                                ("Camaro", 5, "sports"), ("Traverse", 8, "suv"),
                                ("Colorado", 6, "truck"), ("Bolt", 2, "ev"),
                                ("Corvette", 1.5, "sports"), ("Impala", 4, "sedan"))),
    _Make("Honda", 10.0, _m(("Civic", 30, "sedan"), ("Accord", 28, "sedan"), ("CR-V", 25, "suv"),
                            ("Pilot", 8, "suv"), ("Odyssey", 6, "van"), ("HR-V", 4, "suv"),
                            ("Ridgeline", 2, "truck"))),
    _Make("Nissan", 7.0, _m(("Altima", 30, "sedan"), ("Rogue", 28, "suv"), ("Sentra", 20, "sedan"),
                            ("Pathfinder", 8, "suv"), ("Frontier", 6, "truck"), ("Leaf", 3, "ev"),
                            ("370Z", 1, "sports"), ("GT-R", 0.2, "sports"))),
    _Make("Hyundai", 5.0, _m(("Elantra", 30, "sedan"), ("Tucson", 25, "suv"),
                             ("Sonata", 20, "sedan"), ("Santa Fe", 15, "suv"), ("Kona", 8, "suv"),
                             ("Ioniq 5", 2, "ev"))),
    _Make("Kia", 4.0, _m(("Forte", 25, "sedan"), ("Sorento", 22, "suv"), ("Sportage", 25, "suv"),
                         ("Soul", 15, "sedan"), ("Telluride", 10, "suv"), ("EV6", 2, "ev"),
                         ("Stinger", 1, "sports"))),
    _Make("Jeep", 4.0, _m(("Wrangler", 35, "suv"), ("Grand Cherokee", 35, "suv"),
                          ("Cherokee", 20, "suv"), ("Gladiator", 8, "truck"),
                          ("Compass", 10, "suv"))),
    _Make("Ram", 3.5, _m(("1500", 70, "truck"), ("2500", 20, "truck"), ("ProMaster", 10, "van"))),
    _Make("Subaru", 3.5, _m(("Outback", 35, "suv"), ("Forester", 30, "suv"),
                            ("Crosstrek", 20, "suv"), ("Impreza", 10, "sedan"),
                            ("WRX", 5, "sports"))),
    _Make("GMC", 2.5, _m(("Sierra", 55, "truck"), ("Acadia", 20, "suv"), ("Yukon", 20, "suv"),
                         ("Canyon", 5, "truck"))),
    _Make("Tesla", 2.5, _m(("Model 3", 45, "ev"), ("Model Y", 45, "ev"), ("Model S", 6, "ev"),
                           ("Model X", 4, "ev"))),
    _Make("BMW", 2.5, _m(("3 Series", 35, "luxury"), ("X3", 25, "luxury"), ("X5", 25, "luxury"),
                         ("M3", 5, "sports"), ("i4", 5, "ev"))),
    _Make("Mercedes-Benz", 2.2, _m(("C-Class", 35, "luxury"), ("GLE", 25, "luxury"),
                                   ("E-Class", 20, "luxury"), ("GLC", 20, "luxury"))),
    _Make("Volkswagen", 2.0, _m(("Jetta", 35, "sedan"), ("Tiguan", 30, "suv"),
                                ("Atlas", 15, "suv"), ("Golf", 15, "sedan"), ("ID.4", 5, "ev"))),
    _Make("Lexus", 1.8, _m(("RX", 45, "luxury"), ("ES", 35, "luxury"), ("NX", 20, "luxury"))),
    _Make("Mazda", 1.8, _m(("CX-5", 50, "suv"), ("Mazda3", 30, "sedan"), ("CX-9", 10, "suv"),
                           ("MX-5 Miata", 10, "sports"))),
    _Make("Dodge", 1.5, _m(("Charger", 45, "sports"), ("Durango", 30, "suv"),
                           ("Challenger", 25, "sports"))),
    _Make("Audi", 1.2, _m(("A4", 40, "luxury"), ("Q5", 45, "luxury"), ("e-tron", 10, "ev"),
                          ("R8", 1, "sports"))),
    _Make("Acura", 0.8, _m(("MDX", 50, "luxury"), ("RDX", 40, "luxury"), ("TLX", 10, "luxury"))),
    _Make("Buick", 0.8, _m(("Encore", 50, "suv"), ("Enclave", 50, "suv"))),
    _Make("Cadillac", 0.7, _m(("Escalade", 50, "luxury"), ("XT5", 50, "luxury"))),
    _Make("Chrysler", 0.6, _m(("Pacifica", 80, "van"), ("300", 20, "sedan"))),
    _Make("Volvo", 0.6, _m(("XC90", 50, "luxury"), ("XC60", 50, "luxury"))),
    _Make("Infiniti", 0.4, _m(("QX60", 60, "luxury"), ("Q50", 40, "luxury"))),
    _Make("Lincoln", 0.4, _m(("Navigator", 50, "luxury"), ("Aviator", 50, "luxury"))),
    _Make("Mitsubishi", 0.4, _m(("Outlander", 60, "suv"), ("Mirage", 40, "sedan"))),
    _Make("Mini", 0.25, _m(("Cooper", 100, "sedan"),)),
    _Make("Porsche", 0.2, _m(("911", 40, "sports"), ("Cayenne", 40, "luxury"),
                             ("Macan", 20, "luxury"))),
    _Make("Land Rover", 0.2, _m(("Range Rover", 60, "luxury"), ("Defender", 40, "suv"))),
    _Make("Genesis", 0.1, _m(("G70", 50, "luxury"), ("GV80", 50, "luxury"))),
    _Make("Rivian", 0.05, _m(("R1T", 100, "ev"),)),
    _Make("Fiat", 0.05, _m(("500", 100, "sedan"),)),
    _Make("Alfa Romeo", 0.04, _m(("Giulia", 100, "sports"),)),
    _Make("Jaguar", 0.04, _m(("F-Pace", 100, "luxury"),)),
    _Make("Pontiac", 0.03, _m(("G6", 50, "sedan"), ("Firebird", 50, "sports"))),
    _Make("Scion", 0.03, _m(("tC", 100, "sedan"),)),
    _Make("Maserati", 0.02, _m(("Ghibli", 100, "luxury"),)),
    _Make("Polestar", 0.02, _m(("Polestar 2", 100, "ev"),)),
    _Make("Suzuki", 0.02, _m(("SX4", 100, "sedan"),)),
    _Make("Hummer", 0.02, _m(("H2", 100, "suv"),)),
    _Make("Saturn", 0.02, _m(("Vue", 100, "suv"),)),
    _Make("Mercury", 0.02, _m(("Grand Marquis", 100, "sedan"),)),
    _Make("Saab", 0.01, _m(("9-3", 100, "sedan"),)),
    _Make("Smart", 0.01, _m(("Fortwo", 100, "sedan"),)),
    _Make("Lotus", 0.005, _m(("Elise", 100, "sports"),)),
    _Make("Ferrari", 0.004, _m(("488", 100, "sports"),)),
)  # fmt: skip
_DISCONTINUED = frozenset({"Pontiac", "Scion", "Saturn", "Mercury", "Saab", "Hummer", "Smart"})
_KINDS: tuple[str, ...] = ("sedan", "suv", "truck", "van", "sports", "ev", "luxury")
_KIND_EFFECT: tuple[float, ...] = (0.0, 0.1, 0.1, 0.2, -0.3, 0.25, 0.2)

_USAGE: tuple[_Cat, ...] = (
    _Cat("commute", 0.52, 0.3),
    _Cat("pleasure", 0.26, -0.35),
    _Cat("business", 0.10, 0.45),
    _Cat("rideshare", 0.06, 0.15),
    _Cat("farm", 0.025, -0.4),
    _Cat("delivery", 0.015, 0.0),
    _Cat("student", 0.004, -0.3),
    _Cat("show", 0.0008, -0.5),
    _Cat("racing", 0.0003, -1.0),
)
_USAGE_MILES: tuple[float, ...] = (1.1, 0.6, 1.6, 2.6, 0.8, 2.2, 0.9, 0.05, 0.1)

_PROPERTY_TYPES: tuple[_Cat, ...] = (
    _Cat("single_family", 0.56, 0.0),
    _Cat("condo", 0.13, 0.25),
    _Cat("townhouse", 0.10, 0.15),
    _Cat("multi_family", 0.06, -0.1),
    _Cat("mobile_home", 0.05, -0.8),
    _Cat("duplex", 0.035, 0.0),
    _Cat("cabin", 0.012, -0.3),
    _Cat("farmhouse", 0.01, -0.2),
    _Cat("co-op", 0.006, 0.1),
    _Cat("log_home", 0.002, -0.3),
    _Cat("tiny_home", 0.0008, -0.5),
    _Cat("houseboat", 0.0003, -1.0),
    _Cat("castle", 0.0001, -0.5),
)
# Median square footage, sigma of log square footage and value factor, per property type.
_PROPERTY_SIZE: tuple[tuple[float, float, float], ...] = (
    (1900, 0.33, 1.0), (1050, 0.30, 1.1), (1500, 0.28, 1.0), (3200, 0.30, 0.85),
    (1100, 0.25, 0.35), (2200, 0.25, 0.9), (1000, 0.35, 0.8), (2400, 0.35, 0.7),
    (900, 0.30, 1.2), (1800, 0.30, 0.9), (300, 0.30, 0.8), (700, 0.30, 0.6), (12000, 0.40, 2.0),
)  # fmt: skip
_PROP_CONDO = (1, 2, 8)  # types whose addresses usually carry a unit number
_PROP_MOBILE = 4

_CONSTRUCTION: tuple[_Cat, ...] = (
    _Cat("frame", 0.52, 0.0),
    _Cat("masonry", 0.18, 0.3),
    _Cat("brick_veneer", 0.12, 0.2),
    _Cat("stucco", 0.06, 0.05),
    _Cat("concrete", 0.04, 0.3),
    _Cat("steel", 0.015, 0.1),
    _Cat("manufactured", 0.005, -0.3),
    _Cat("log", 0.008, -0.5),
    _Cat("adobe", 0.004, -0.2),
    _Cat("stone", 0.003, 0.0),
    _Cat("icf", 0.001, 0.2),
    _Cat("straw_bale", 0.0003, -0.8),
    _Cat("cob", 0.0002, -0.8),
)
_CONSTRUCTION_MANUFACTURED = 6
_CONSTRUCTION_FRAME = 0

_ROOFS: tuple[_Cat, ...] = (
    _Cat("asphalt_shingle", 0.60, 0.0),
    _Cat("architectural_shingle", 0.10, 0.15),
    _Cat("metal", 0.09, 0.35),
    _Cat("clay_tile", 0.05, 0.2),
    _Cat("concrete_tile", 0.04, 0.2),
    _Cat("flat_built_up", 0.035, -0.2),
    _Cat("wood_shake", 0.03, -0.7),
    _Cat("slate", 0.02, 0.1),
    _Cat("tpo_membrane", 0.015, 0.0),
    _Cat("rubber_membrane", 0.01, -0.1),
    _Cat("solar_tiles", 0.002, 0.3),
    _Cat("green_roof", 0.0005, -0.3),
    _Cat("rolled_roofing", 0.0003, -0.4),
    _Cat("thatch", 0.0002, -1.2),
    _Cat("copper", 0.0001, 0.2),
)
_ROOF_WOOD_SHAKE = 6

_SECURITY: tuple[_Phrase, ...] = (
    _Phrase(("alarm", "alarm system", "burglar alarm", "alarm sys"), 3.0, 0.15),
    _Phrase(("monitored alarm", "ADT monitored", "central station alarm", "monitored alrm"),
            1.5, 0.5),
    _Phrase(("deadbolt", "deadbolts", "dead bolt", "deadbolt locks"), 4.0, 0.1),
    _Phrase(("smoke detector", "smoke detectors", "smoke alarm", "smoke dectector"), 4.0, 0.15),
    _Phrase(("fire sprinklers", "sprinkler system", "sprinklers"), 0.8, 0.35),
    _Phrase(("security camera", "cameras", "Ring doorbell", "CCTV"), 2.0, 0.1),
    _Phrase(("gated community", "gated", "gated comm."), 0.6, 0.2),
    _Phrase(("fire extinguisher", "extinguisher"), 1.5, 0.05),
    _Phrase(("smart lock", "smart locks"), 0.8, 0.05),
    _Phrase(("motion lights", "motion sensor lights"), 0.8, 0.0),
    _Phrase(("dog", "guard dog", "big dog"), 0.6, -0.05),
    _Phrase(("storm shutters", "hurricane shutters"), 0.4, 0.3),
    _Phrase(("CO detector", "carbon monoxide detector"), 1.0, 0.1),
    _Phrase(("safe room", "panic room"), 0.02, 0.0),
)  # fmt: skip
_NONE_WORDS: tuple[str, ...] = ("none", "None", "n/a", "no", "NONE", "nothing")

_COVERAGE_TYPES: tuple[_Cat, ...] = (
    _Cat("individual", 0.46, 0.0),
    _Cat("family", 0.27, 0.15),
    _Cat("couple", 0.10, 0.1),
    _Cat("individual_plus_children", 0.06, 0.1),
    _Cat("short_term", 0.045, -0.35),
    _Cat("catastrophic", 0.015, -0.2),
    _Cat("medicare_supplement", 0.03, 0.0),
    _Cat("dental_vision", 0.01, -0.4),
    _Cat("hospital_indemnity", 0.003, -0.3),
    _Cat("cobra", 0.002, -0.5),
    _Cat("critical_illness", 0.001, -0.3),
    _Cat("sharing_ministry", 0.0004, -0.6),
)
_COV_INDIVIDUAL, _COV_FAMILY, _COV_MEDICARE = 0, 1, 6
_COV_SHARED = (1, 2, 3)  # plans that cover more than one person
_TOBACCO: tuple[_Cat, ...] = (
    _Cat("no", 0.78, 0.0),
    _Cat("yes", 0.14, -0.4),
    _Cat("former", 0.06, -0.1),
    _Cat("occasional", 0.015, -0.2),
    _Cat("vape_only", 0.004, -0.2),
    _Cat("chewing_tobacco", 0.001, -0.3),
    _Cat("hookah", 0.0002, -0.2),
    _Cat("nicotine_patch", 0.0001, 0.0),
)
_INSURERS: tuple[_Cat, ...] = (
    _Cat("none", 0.30, 0.45),
    _Cat("Blue Cross Blue Shield", 0.16, 0.0),
    _Cat("UnitedHealthcare", 0.10, 0.0),
    _Cat("Aetna", 0.07, 0.05),
    _Cat("Cigna", 0.06, 0.05),
    _Cat("Humana", 0.05, -0.05),
    _Cat("Kaiser Permanente", 0.05, -0.2),
    _Cat("Ambetter", 0.05, 0.1),
    _Cat("Medicaid", 0.04, -0.5),
    _Cat("Anthem", 0.03, 0.0),
    _Cat("Oscar", 0.03, 0.1),
    _Cat("Molina", 0.03, -0.1),
    _Cat("Highmark", 0.002, 0.0),
    _Cat("Harvard Pilgrim", 0.002, 0.0),
    _Cat("Priority Health", 0.0015, 0.0),
    _Cat("Medica", 0.0015, 0.0),
    _Cat("Wellmark", 0.0015, 0.0),
    _Cat("Premera", 0.0012, 0.0),
    _Cat("Tufts Health Plan", 0.001, 0.0),
    _Cat("Geisinger", 0.0008, 0.0),
    _Cat("Bright Health", 0.0004, 0.2),
    _Cat("Friday Health", 0.0003, 0.2),
    _Cat("Sidecar Health", 0.0002, 0.0),
)
_EMPLOYMENT: tuple[_Cat, ...] = (
    _Cat("employed_full_time", 0.42, -0.25),
    _Cat("employed_part_time", 0.12, 0.15),
    _Cat("self_employed", 0.14, 0.5),
    _Cat("unemployed", 0.09, -0.3),
    _Cat("retired", 0.08, -0.1),
    _Cat("student", 0.05, -0.4),
    _Cat("contractor", 0.04, 0.45),
    _Cat("disabled", 0.03, -0.2),
    _Cat("homemaker", 0.02, 0.0),
    _Cat("seasonal", 0.015, 0.1),
    _Cat("early_retired", 0.003, 0.3),
    _Cat("military_reserve", 0.0003, 0.0),
    _Cat("sabbatical", 0.0004, 0.0),
)
# Median income of each employment status (health leads).
_EMPLOYMENT_INCOME: tuple[float, ...] = (
    62000, 26000, 58000, 9000, 38000, 12000, 48000, 16000, 20000, 28000, 70000, 45000, 55000,
)  # fmt: skip
_EMP_UNEMPLOYED, _EMP_RETIRED, _EMP_STUDENT = 3, 4, 5
_EMP_SELF = (2, 6)  # self-employed and contractors

_CONDITIONS: tuple[_Phrase, ...] = (
    _Phrase(("diabetes", "type 2 diabetes", "diabetic", "T2D", "diabetis"), 3.0, 0.4),
    _Phrase(("hypertension", "high blood pressure", "HBP", "htn", "hypertention"), 4.0, 0.35),
    _Phrase(("asthma", "asthma (mild)", "athsma"), 2.5, 0.25),
    _Phrase(("high cholesterol", "cholesterol", "hyperlipidemia"), 3.0, 0.15),
    _Phrase(("depression", "depresion", "major depression"), 2.0, 0.1),
    _Phrase(("anxiety", "anxiety disorder", "GAD"), 2.0, 0.1),
    _Phrase(("COPD", "emphysema"), 0.8, -0.4),
    _Phrase(("heart disease", "CAD", "heart condition", "afib"), 1.0, -0.4),
    _Phrase(("cancer (remission)", "breast cancer survivor", "cancer"), 0.6, -0.5),
    _Phrase(("arthritis", "rheumatoid arthritis", "osteoarthritis"), 1.5, 0.05),
    _Phrase(("sleep apnea", "OSA", "sleep apnoea"), 1.2, 0.1),
    _Phrase(("hypothyroidism", "thyroid", "hashimotos"), 1.2, 0.1),
    _Phrase(("pregnant", "pregnancy", "expecting"), 0.6, 0.9),
    _Phrase(("lupus",), 0.05, -0.3),
    _Phrase(("crohn's disease", "crohns"), 0.05, 0.0),
    _Phrase(("multiple sclerosis",), 0.04, -0.3),
    _Phrase(("hepatitis c", "hep c"), 0.03, -0.3),
    _Phrase(("kidney disease", "CKD"), 0.1, -0.4),
)  # fmt: skip
_COND_PREGNANT = 12

_POLICY_TYPES: tuple[_Cat, ...] = (
    _Cat("term", 0.60, 0.3),
    _Cat("whole", 0.16, -0.1),
    _Cat("universal", 0.09, -0.2),
    _Cat("final_expense", 0.06, 0.1),
    _Cat("indexed_universal", 0.05, -0.15),
    _Cat("variable_universal", 0.025, -0.4),
    _Cat("guaranteed_universal", 0.01, 0.0),
    _Cat("return_of_premium_term", 0.003, -0.2),
    _Cat("survivorship", 0.0015, -0.3),
    _Cat("accidental_death", 0.0004, -0.5),
    _Cat("joint_first_to_die", 0.0003, 0.0),
    _Cat("key_person", 0.0002, 0.2),
)
_POL_TERM, _POL_FINAL, _POL_ROP = 0, 3, 7
_TERM_LENGTHS: tuple[int, ...] = (10, 15, 20, 25, 30, 35, 40)
_TERM_WEIGHTS: tuple[float, ...] = (0.17, 0.12, 0.38, 0.08, 0.22, 0.02, 0.01)
_SMOKER: tuple[_Cat, ...] = (
    _Cat("no", 0.84, 0.0),
    _Cat("yes", 0.12, -0.6),
    _Cat("former", 0.03, -0.1),
    _Cat("occasional", 0.008, -0.3),
    _Cat("vape", 0.0015, -0.3),
    _Cat("cigars_only", 0.0008, -0.2),
    _Cat("pipe", 0.0002, -0.2),
    _Cat("chewing_tobacco", 0.0002, -0.3),
)
_HEALTH_CLASSES: tuple[_Cat, ...] = (
    _Cat("preferred_plus", 0.0, 0.7),
    _Cat("preferred", 0.0, 0.45),
    _Cat("standard_plus", 0.0, 0.15),
    _Cat("standard", 0.0, 0.0),
    _Cat("substandard", 0.0, -0.7),
    _Cat("table_rated", 0.0, -0.9),
    _Cat("declined_previously", 0.0, -1.3),
    _Cat("super_preferred", 0.0, 0.8),
)
_MARITAL: tuple[_Cat, ...] = (
    _Cat("married", 0.52, 0.35),
    _Cat("single", 0.28, 0.0),
    _Cat("divorced", 0.10, -0.1),
    _Cat("widowed", 0.04, -0.2),
    _Cat("domestic_partner", 0.04, 0.2),
    _Cat("separated", 0.02, -0.2),
    _Cat("civil_union", 0.0008, 0.2),
    _Cat("engaged", 0.0003, 0.3),
    _Cat("annulled", 0.0001, 0.0),
)
_MARITAL_YOUNG: tuple[float, ...] = (0.30, 0.60, 0.03, 0.002, 0.06, 0.01, 0.0008, 0.0015, 0.0001)

_AUTO_STATE: dict[str, float] = {
    "TX": 0.35, "CA": 0.2, "GA": 0.2, "AZ": 0.15, "NC": 0.2, "OH": 0.1, "FL": -0.45,
    "MI": -0.5, "NY": -0.15, "NJ": -0.2, "LA": -0.4,
}  # fmt: skip
_HOME_STATE: dict[str, float] = {
    "FL": -0.8, "CA": -0.45, "LA": -0.6, "TX": -0.15, "OH": 0.3, "PA": 0.25, "NC": 0.2,
    "WI": 0.25, "MN": 0.2, "IN": 0.2, "CO": -0.1, "OK": -0.2,
}  # fmt: skip
_HEALTH_STATE: dict[str, float] = {
    "TX": 0.35, "FL": 0.4, "GA": 0.3, "NC": 0.2, "NY": -0.2, "MA": -0.5, "NJ": -0.1,
    "AZ": 0.15,
}  # fmt: skip
_LIFE_STATE: dict[str, float] = {
    "NY": -0.35, "NJ": 0.15, "CA": 0.1, "TX": 0.2, "GA": 0.1, "PA": 0.15, "OH": 0.2,
    "IL": 0.1,
}  # fmt: skip
_COASTAL = frozenset({"FL", "LA", "TX", "SC", "NC"})
# Price per square foot of housing by state (USD); others use the default.
_PRICE_PER_SQFT: dict[str, float] = {
    "CA": 650, "NY": 480, "MA": 520, "WA": 420, "CO": 380, "NJ": 330, "FL": 280, "TX": 190,
    "AZ": 280, "IL": 220, "PA": 200, "OH": 150, "MI": 160, "GA": 210, "NC": 230, "TN": 220,
    "NV": 280, "OR": 350, "MN": 230, "LA": 170, "MO": 170, "IN": 150, "KY": 160, "OK": 140,
    "NM": 220, "UT": 350, "WI": 190, "AL": 150, "MD": 290, "HI": 700,
}  # fmt: skip
_DEFAULT_PRICE_PER_SQFT = 200.0


# ----------------------------------------------------------------------------------------
# Drawing and formatting helpers
# ----------------------------------------------------------------------------------------


def _draw(rng: np.random.Generator, weights: Sequence[float], size: int) -> IntArray:
    """Draw ``size`` indices with probabilities proportional to ``weights``."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    picks = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    return np.asarray(np.minimum(picks, len(cdf) - 1), dtype=np.intp)


def _effects(cats: Sequence[_Cat], idx: IntArray) -> FloatArray:
    """Return the logit effect of each drawn category."""
    return np.array([c.effect for c in cats], dtype=np.float64)[idx]


def _mask(rng: np.random.Generator, rate: float | FloatArray, size: int) -> BoolArray:
    """Return a missingness mask: each cell is missing with probability ``rate``."""
    return np.asarray(rng.random(size) < rate, dtype=np.bool_)


def _sigmoid(x: FloatArray) -> FloatArray:
    """Return the logistic function of ``x``."""
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _hump(x: FloatArray, centre: float, width: float, floor: float) -> FloatArray:
    """Return ``-((x - centre) / width) ** 2`` bounded below by ``floor``."""
    return np.asarray(np.maximum(-(((x - centre) / width) ** 2), floor), dtype=np.float64)


def _state_effect(state: Sequence[str], effects: Mapping[str, float]) -> FloatArray:
    """Return each lead's state effect (0 for states not in ``effects``)."""
    return np.array([effects.get(s, 0.0) for s in state], dtype=np.float64)


def _ints(values: FloatArray, missing: BoolArray) -> list[str]:
    """Format whole numbers as integers; missing cells become ``""``."""
    return [
        "" if gone else str(v)
        for v, gone in zip(np.rint(values).astype(np.int64).tolist(), missing.tolist(), strict=True)
    ]


def _decimals(values: FloatArray, places: IntArray, missing: BoolArray) -> list[str]:
    """Format floats with ``places`` (at most 2) decimals and no trailing zeros."""
    out: list[str] = []
    for v, p, gone in zip(values.tolist(), places.tolist(), missing.tolist(), strict=True):
        if gone:
            out.append("")
            continue
        text = f"{v:.{p}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        out.append(text)
    return out


def _labels(
    rng: np.random.Generator, cats: Sequence[str], idx: IntArray, missing: BoolArray
) -> list[str]:
    """Return category labels with messy casing on a few cells and ``""`` where missing."""
    canon = list(cats)
    table = np.array(
        [canon, [c.lower() for c in canon], [c.upper() for c in canon], [c.title() for c in canon]],
        dtype=object,
    )
    case = _draw(rng, (1.0 - _CASE_MESS_RATE, 0.45 * _CASE_MESS_RATE, 0.2 * _CASE_MESS_RATE,
                       0.35 * _CASE_MESS_RATE), len(idx))  # fmt: skip
    cells = table[case, idx]
    cells[missing] = ""
    out: list[str] = cells.tolist()
    return out


def _scruff(rng: np.random.Generator, texts: list[str], case_weights: Sequence[float]) -> None:
    """Mess up typed text in place: casing, stray and doubled spaces (missing stays "")."""
    n = len(texts)
    case = _draw(rng, case_weights, n).tolist()
    space = _draw(rng, (0.86, 0.04, 0.04, 0.04, 0.02), n).tolist()
    for i in range(n):
        text = texts[i]
        if not text:
            continue
        c, s = case[i], space[i]
        if c == 1:
            text = text.lower()
        elif c == 2:
            text = text.upper()
        elif c == 3:
            text = text.title()
        if s == 1:
            text = " " + text
        elif s == 2:
            text += " "
        elif s == 3:
            text = text.replace(" ", "  ", 1) if " " in text else text + "  "
        elif s == 4:
            text = "  " + text + " "
        texts[i] = text


def _variant(variants: Sequence[str], u: float) -> str:
    """Pick the canonical spelling for ``u < 0.6``, else one of the others uniformly."""
    if u < 0.6 or len(variants) == 1:
        return variants[0]
    return variants[1 + min(int((u - 0.6) / 0.4 * (len(variants) - 1)), len(variants) - 2)]


def _occupations(rng: np.random.Generator, occupation: IntArray, missing: BoolArray) -> list[str]:
    """Return occupations as typed: a spelling variant, then casing and spacing noise."""
    u = rng.random(len(occupation)).tolist()
    texts = [
        "" if gone else _variant(_OCCUPATIONS[o].variants, v)
        for o, v, gone in zip(occupation.tolist(), u, missing.tolist(), strict=True)
    ]
    _scruff(rng, texts, (0.62, 0.25, 0.05, 0.08))
    return texts


def _draw_occupation(rng: np.random.Generator, age: FloatArray) -> IntArray:
    """Draw occupations, making most of the young students and most of the old retired."""
    weights = [o.weight for o in _OCCUPATIONS]
    occupation = _draw(rng, weights, len(age))
    working = [0.0 if i in (_OCC_STUDENT, _OCC_RETIRED) else w for i, w in enumerate(weights)]
    other = _draw(rng, working, len(age))
    u = rng.random(len(age))
    occupation[(age <= 22) & (u < 0.55)] = _OCC_STUDENT
    occupation[(age >= 67) & (u < 0.75)] = _OCC_RETIRED
    odd = ((occupation == _OCC_STUDENT) & (age >= 30) & (u < 0.9)) | (
        (occupation == _OCC_RETIRED) & (age < 55)
    )
    occupation[odd] = other[odd]
    return occupation


def _zips(rng: np.random.Generator, city: IntArray) -> list[str]:
    """Return a five-digit ZIP code inside each city's range."""
    base = np.array([c.zip_base for c in _CITIES], dtype=np.int64)[city]
    span = np.array([c.zip_span for c in _CITIES], dtype=np.int64)[city]
    codes = base + np.floor(rng.random(len(city)) * span).astype(np.int64)
    return [f"{z:05d}" for z in codes.tolist()]


def _city_names(rng: np.random.Generator, city: IntArray) -> list[str]:
    """Return city names, misspelled on 8% of rows where the city has known typos."""
    u = rng.random(len(city)).tolist()
    names: list[str] = []
    for c, v in zip(city.tolist(), u, strict=True):
        info = _CITIES[c]
        if v < 0.08 and info.typos:
            names.append(info.typos[min(int(v / 0.08 * len(info.typos)), len(info.typos) - 1)])
        else:
            names.append(info.name)
    return names


def _locations(rng: np.random.Generator, city: IntArray, missing: BoolArray) -> list[str]:
    """Return typed locations such as ``"Austin, TX 78701"`` or ``"austin tx"``."""
    names = _city_names(rng, city)
    zips = _zips(rng, city)
    fmt = _draw(rng, [w for _, w in _LOCATION_FORMATS], len(city)).tolist()
    texts: list[str] = []
    for c, name, z, f, gone in zip(city.tolist(), names, zips, fmt, missing.tolist(), strict=True):
        if gone:
            texts.append("")
            continue
        state = _CITIES[c].state
        texts.append(
            _LOCATION_FORMATS[f][0].format(
                c=name, cl=name.lower(), cu=name.upper(), s=state, sl=state.lower(), z=z
            )
        )
    _scruff(rng, texts, (0.9, 0.05, 0.02, 0.03))
    return texts


def _addresses(
    rng: np.random.Generator, city: IntArray, with_unit: BoolArray, missing: BoolArray
) -> list[str]:
    """Return street addresses such as ``"123 Main St, Springfield, IL 62701"``."""
    n = len(city)
    names = _city_names(rng, city)
    zips = _zips(rng, city)
    number = np.floor(np.exp(rng.uniform(0.0, 9.2, n))).astype(np.int64).tolist()
    street = _draw(rng, [1.0] * len(_STREETS), n).tolist()
    suffix = _draw(rng, [4, 3, 2, 2, 1.5, 0.8, 0.8, 0.5, 0.5, 0.5, 0.3], n).tolist()
    suffix_u = rng.random(n).tolist()
    unit = (with_unit & (rng.random(n) < 0.7)).tolist()
    unit_no = rng.integers(1, 40, n).tolist()
    unit_style = _draw(rng, (0.5, 0.3, 0.2), n).tolist()
    style = _draw(rng, (0.7, 0.12, 0.10, 0.08), n).tolist()
    texts: list[str] = []
    for i in range(n):
        if missing[i]:
            texts.append("")
            continue
        forms = _SUFFIXES[suffix[i]]
        line = f"{number[i]} {_STREETS[street[i]]} {_variant(forms, suffix_u[i])}"
        if unit[i]:
            line += (f" Apt {unit_no[i]}", f" #{unit_no[i]}", f" Unit {unit_no[i]}B")[unit_style[i]]
        state = _CITIES[city[i]].state
        s = style[i]
        if s == 0:
            texts.append(f"{line}, {names[i]}, {state} {zips[i]}")
        elif s == 1:
            texts.append(f"{line}, {names[i]}, {state}")
        elif s == 2:
            texts.append(f"{line} {names[i]} {state} {zips[i]}".lower())
        else:
            texts.append(f"{line},{names[i]},{state},{zips[i]}")
    _scruff(rng, texts, (0.88, 0.04, 0.04, 0.04))
    return texts


def _phrase_lists(
    rng: np.random.Generator,
    phrases: Sequence[_Phrase],
    counts: IntArray,
    missing: BoolArray,
    separators: Sequence[tuple[str, float]],
    blocked: tuple[int, BoolArray] | None = None,
) -> tuple[list[str], FloatArray]:
    """Build list-valued texts (``"alarm, deadbolt"``) of ``counts[i]`` distinct items.

    Args:
        rng: The generator.
        phrases: The possible items.
        counts: How many distinct items each row lists.
        missing: Rows whose cell is missing (their items still count for the effect).
        separators: Joiners and their weights.
        blocked: An item index and the rows that must not list it.

    Returns:
        The texts (``"none"``-style words for zero items) and the summed effect of each
        row's items.
    """
    n = len(counts)
    width = max(int(counts.max()) if n else 0, 1)
    picks = _draw(rng, [p.weight for p in phrases], n * width * 2).reshape(n, width * 2)
    u = rng.random((n, width * 2)).tolist()
    sep = _draw(rng, [w for _, w in separators], n).tolist()
    none_word = _draw(rng, (0.6, 0.12, 0.1, 0.08, 0.05, 0.05), n).tolist()
    block_item, block_rows = blocked if blocked else (-1, np.zeros(n, dtype=np.bool_))
    blocked_rows = block_rows.tolist()
    effect = np.zeros(n, dtype=np.float64)
    texts: list[str] = []
    for i, (row, k) in enumerate(zip(picks.tolist(), counts.tolist(), strict=True)):
        chosen: list[int] = []
        for j in row:
            if len(chosen) >= k:
                break
            if j not in chosen and not (j == block_item and blocked_rows[i]):
                chosen.append(j)
        effect[i] = sum(phrases[j].effect for j in chosen)
        if missing[i]:
            texts.append("")
        elif not chosen:
            texts.append(_NONE_WORDS[none_word[i]])
        else:
            words = [_variant(phrases[j].variants, u[i][t]) for t, j in enumerate(chosen)]
            texts.append(separators[sep[i]][0].join(words))
    _scruff(rng, texts, (0.8, 0.1, 0.04, 0.06))
    return texts, effect


class _Synth(NamedTuple):
    """A simulated vertical: its formatted columns and each lead's observable score."""

    columns: dict[str, list[str]]
    score: FloatArray


class _Rule(NamedTuple):
    """``logit = intercept + scale * score + Normal(0, noise)`` of one vertical."""

    intercept: float
    scale: float
    noise: float


# ----------------------------------------------------------------------------------------
# Verticals
# ----------------------------------------------------------------------------------------


def _auto(rng: np.random.Generator, n: int) -> _Synth:
    """Simulate auto leads (the rule is in docs/synthetic-data.md)."""
    age = np.clip(np.rint(16.0 + rng.gamma(2.4, 11.5, n)), 16, 99)
    licence_age = 16.0 + rng.gamma(1.1, 2.2, n)
    driving_years = np.clip(np.floor(age - licence_age), 0, 85)

    make = _draw(rng, [m.weight for m in _MAKES], n)
    model_label: list[str] = [""] * n
    kind = np.zeros(n, dtype=np.intp)
    model_u = rng.random(n)
    for mi, info in enumerate(_MAKES):
        rows = np.flatnonzero(make == mi)
        if rows.size == 0:
            continue
        cdf = np.cumsum([m.weight for m in info.models])
        picks = np.minimum(
            np.searchsorted(cdf, model_u[rows] * cdf[-1], side="right"), len(cdf) - 1
        )
        for r, p in zip(rows.tolist(), picks.tolist(), strict=True):
            model_label[r] = info.models[p].label
            kind[r] = _KINDS.index(info.models[p].kind)
    discontinued = np.array([m.label in _DISCONTINUED for m in _MAKES])[make]
    vehicle_age = rng.gamma(1.8, 3.8, n)
    vehicle_age = np.where(kind == _KINDS.index("ev"), vehicle_age * 0.4, vehicle_age)
    vehicle_age = np.where(discontinued, vehicle_age + 12.0, vehicle_age)
    classic = rng.random(n) < 0.004
    vehicle_age = np.where(classic, rng.uniform(25, 60, n), vehicle_age)
    vehicle_age = np.clip(np.rint(vehicle_age), 0, 60)

    usage = _draw(rng, [c.weight for c in _USAGE], n)
    miles_factor = np.array(_USAGE_MILES)[usage] * np.where(age >= 70, 0.6, 1.0)
    mileage = 11500.0 * miles_factor * rng.lognormal(0.0, 0.45, n)
    mileage = np.clip(np.rint(mileage / 100.0) * 100.0, 0, 200000)

    occupation = _draw_occupation(rng, age)
    city = _draw(rng, [c.weight for c in _CITIES], n)
    states = [_CITIES[c].state for c in city.tolist()]

    miss_dy = _mask(rng, 0.06, n)
    miss_va = _mask(rng, 0.04, n)
    miss_mi = _mask(rng, np.where(usage == 1, 0.15, 0.10), n)
    miss_make = _mask(rng, 0.025, n)
    miss_model = miss_make | _mask(rng, 0.04, n)
    miss_usage = _mask(rng, 0.03, n)
    miss_occ = _mask(rng, 0.08, n)
    miss_loc = _mask(rng, 0.04, n)
    n_missing = sum(
        m.astype(np.float64) for m in (miss_dy, miss_va, miss_mi, miss_model, miss_usage, miss_occ)
    )

    sports = kind == _KINDS.index("sports")
    score = (
        1.1 * _hump(age, 38.0, 20.0, -2.3)
        + 0.55 * np.clip(np.log(np.maximum(mileage, 500.0) / 11000.0), -2.0, 1.5)
        + 0.5 * (vehicle_age <= 3)
        - 0.05 * np.clip(vehicle_age - 8.0, 0.0, 20.0)
        + _effects(_USAGE, usage)
        + np.array(_KIND_EFFECT)[kind]
        - 1.0 * ((age < 25) & sports)
        + 0.5 * ((driving_years >= 10) & (usage == 0))
        + np.array([o.auto for o in _OCCUPATIONS])[occupation]
        + _state_effect(states, _AUTO_STATE)
        - 0.3 * n_missing
    )
    columns = {
        "age": _ints(age, np.zeros(n, dtype=np.bool_)),
        "driving_years": _ints(driving_years, miss_dy),
        "vehicle_age": _ints(vehicle_age, miss_va),
        "annual_mileage": _ints(mileage, miss_mi),
        "vehicle_make": _labels(rng, [m.label for m in _MAKES], make, miss_make),
        "vehicle_model": _model_cells(rng, model_label, miss_model),
        "usage_type": _labels(rng, [c.label for c in _USAGE], usage, miss_usage),
        "occupation": _occupations(rng, occupation, miss_occ),
        "location": _locations(rng, city, miss_loc),
    }
    return _Synth(columns, np.asarray(score, dtype=np.float64))


def _model_cells(rng: np.random.Generator, labels: list[str], missing: BoolArray) -> list[str]:
    """Return vehicle model cells with messy casing on a few and ``""`` where missing."""
    case = _draw(rng, (1.0 - _CASE_MESS_RATE, _CASE_MESS_RATE * 0.6, _CASE_MESS_RATE * 0.4),
                 len(labels)).tolist()  # fmt: skip
    out: list[str] = []
    for label, c, gone in zip(labels, case, missing.tolist(), strict=True):
        out.append("" if gone else (label, label.lower(), label.upper())[c])
    return out


def _home(rng: np.random.Generator, n: int) -> _Synth:
    """Simulate home leads (the rule is in docs/synthetic-data.md)."""
    ptype = _draw(rng, [c.weight for c in _PROPERTY_TYPES], n)
    size = np.array(_PROPERTY_SIZE, dtype=np.float64)[ptype]
    sqft = size[:, 0] * np.exp(rng.normal(0.0, 1.0, n) * size[:, 1])
    sqft = np.clip(np.rint(sqft / 10.0) * 10.0, 100, 50000)

    age = rng.gamma(1.6, 22.0, n)
    age = np.where(ptype == _PROP_MOBILE, rng.gamma(1.5, 10.0, n), age)
    historic = rng.random(n) < 0.03
    age = np.where(historic, rng.uniform(100, 250, n), age)
    age = np.clip(np.rint(age), 0, 300)

    city = _draw(rng, [c.weight for c in _CITIES], n)
    states = [_CITIES[c].state for c in city.tolist()]
    ppsf = np.array([_PRICE_PER_SQFT.get(s, _DEFAULT_PRICE_PER_SQFT) for s in states])
    value = (
        sqft
        * ppsf
        * size[:, 2]
        * rng.lognormal(0.0, 0.28, n)
        * (1.0 - 0.004 * np.minimum(age, 60.0))
    )
    value = np.clip(np.rint(value / 1000.0) * 1000.0, 1000, 50_000_000)

    construction = _draw(rng, [c.weight for c in _CONSTRUCTION], n)
    construction[ptype == _PROP_MOBILE] = _CONSTRUCTION_MANUFACTURED
    roof = _draw(rng, [c.weight for c in _ROOFS], n)

    wealth = np.log(value / 300000.0)
    n_security = np.clip(rng.poisson(np.clip(1.3 + 0.45 * wealth, 0.2, 4.0)), 0, 6)
    miss_sec = _mask(rng, 0.09, n)
    security, security_effect = _phrase_lists(
        rng,
        _SECURITY,
        n_security.astype(np.intp),
        miss_sec,
        ((", ", 0.6), (",", 0.15), ("; ", 0.1), (" and ", 0.08), (" / ", 0.07)),
    )
    miss_age = _mask(rng, 0.05, n)
    miss_value = _mask(rng, np.where(value > 1_000_000, 0.15, 0.07), n)
    miss_cons = _mask(rng, 0.04, n)
    miss_roof = _mask(rng, 0.06, n)
    miss_type = _mask(rng, 0.025, n)
    miss_addr = _mask(rng, 0.03, n)
    n_missing = sum(
        m.astype(np.float64) for m in (miss_age, miss_value, miss_cons, miss_roof, miss_sec)
    )
    coastal_frame = np.array([s in _COASTAL for s in states]) & (
        construction == _CONSTRUCTION_FRAME
    )
    ca_shake = np.array([s == "CA" for s in states]) & (roof == _ROOF_WOOD_SHAKE)

    score = (
        0.9 * _hump(np.log(value), float(np.log(400000.0)), 0.9, -2.5)
        + 0.4 * (age <= 10)
        - 0.6 * np.clip((age - 50.0) / 50.0, 0.0, 1.5)
        + _effects(_PROPERTY_TYPES, ptype)
        + _effects(_CONSTRUCTION, construction)
        + _effects(_ROOFS, roof)
        + np.minimum(security_effect, 1.2)
        - 0.3 * (n_security == 0)
        + _state_effect(states, _HOME_STATE)
        - 0.5 * coastal_frame
        - 0.6 * ca_shake
        - 0.25 * n_missing
    )
    columns = {
        "property_age": _ints(age, miss_age),
        "square_footage": _ints(sqft, np.zeros(n, dtype=np.bool_)),
        "property_value": _ints(value, miss_value),
        "construction_type": _labels(
            rng, [c.label for c in _CONSTRUCTION], construction, miss_cons
        ),
        "roof_type": _labels(rng, [c.label for c in _ROOFS], roof, miss_roof),
        "property_type": _labels(rng, [c.label for c in _PROPERTY_TYPES], ptype, miss_type),
        "address": _addresses(rng, city, np.isin(ptype, _PROP_CONDO), miss_addr),
        "security_features": security,
    }
    return _Synth(columns, np.asarray(score, dtype=np.float64))


def _health(rng: np.random.Generator, n: int) -> _Synth:
    """Simulate health leads (the rule is in docs/synthetic-data.md)."""
    age = np.clip(np.rint(18.0 + rng.gamma(2.0, 12.0, n)), 18, 95)
    employment = _draw(rng, [c.weight for c in _EMPLOYMENT], n)
    u = rng.random(n)
    employment[(age >= 65) & (u < 0.7)] = _EMP_RETIRED
    employment[(age <= 24) & (u < 0.4)] = _EMP_STUDENT
    employment[(age < 50) & (employment == _EMP_RETIRED)] = 0

    household = np.clip(1 + rng.poisson(np.where(age < 25, 0.4, 1.3), n), 1, 12).astype(np.float64)
    income = (
        np.array(_EMPLOYMENT_INCOME)[employment]
        * rng.lognormal(0.0, 0.6, n)
        * (1.0 + 0.12 * (household >= 2))
    )
    income = np.where((employment == _EMP_UNEMPLOYED) & (rng.random(n) < 0.3), 0.0, income)
    income = np.clip(np.rint(income / 100.0) * 100.0, 0, 10_000_000)

    bmi = np.clip(27.8 * rng.lognormal(0.0, 0.19, n) + 0.03 * (age - 40.0), 14.0, 70.0)
    bmi_places = np.where(rng.random(n) < 0.3, 2, 1).astype(np.intp)
    bmi = np.round(bmi, 2)

    coverage = _draw(rng, [c.weight for c in _COVERAGE_TYPES], n)
    coverage[(household == 1) & np.isin(coverage, _COV_SHARED)] = _COV_INDIVIDUAL
    coverage[(household >= 3) & (coverage == _COV_INDIVIDUAL) & (rng.random(n) < 0.6)] = _COV_FAMILY
    coverage[(age >= 65) & (rng.random(n) < 0.6)] = _COV_MEDICARE
    coverage[(age < 62) & (coverage == _COV_MEDICARE)] = _COV_INDIVIDUAL
    tobacco = _draw(rng, [c.weight for c in _TOBACCO], n)
    insurer = _draw(rng, [c.weight for c in _INSURERS], n)

    lam = np.clip(0.25 + 0.025 * (age - 18.0) + 0.05 * np.maximum(bmi - 30.0, 0.0), 0.1, 3.0)
    n_cond = np.clip(rng.poisson(lam), 0, 4).astype(np.intp)
    miss_cond = _mask(rng, 0.07, n)
    conditions, cond_effect = _phrase_lists(
        rng,
        _CONDITIONS,
        n_cond,
        miss_cond,
        (("; ", 0.5), (", ", 0.3), (" and ", 0.1), (" / ", 0.05), (";", 0.05)),
        blocked=(_COND_PREGNANT, age > 48),
    )

    city = _draw(rng, [c.weight for c in _CITIES], n)
    states = [_CITIES[c].state for c in city.tolist()]

    miss_bmi = _mask(rng, 0.07, n)
    miss_hh = _mask(rng, 0.03, n)
    miss_inc = _mask(rng, np.where(np.isin(employment, _EMP_SELF), 0.18, 0.10), n)
    miss_cov = _mask(rng, 0.03, n)
    miss_tob = _mask(rng, 0.05, n)
    miss_ins = _mask(rng, 0.06, n)
    miss_emp = _mask(rng, 0.04, n)
    miss_loc = _mask(rng, 0.04, n)
    n_missing = sum(
        m.astype(np.float64) for m in (miss_bmi, miss_hh, miss_inc, miss_tob, miss_ins, miss_emp)
    )

    fpl = 15060.0 + 5380.0 * (household - 1.0)
    ratio = np.maximum(income, 1.0) / fpl
    senior = age >= 65
    score = (
        1.2 * np.exp(-(((np.log(ratio) - np.log(2.5)) / 0.6) ** 2))
        - 0.6 * (ratio < 1.38)
        - 1.2 * senior
        + 1.1 * (senior & (coverage == _COV_MEDICARE))
        + 0.25 * _hump(age, 40.0, 20.0, -2.0)
        + _effects(_EMPLOYMENT, employment)
        + 0.4 * (np.isin(employment, _EMP_SELF) & (household >= 3))
        + _effects(_INSURERS, insurer)
        + _effects(_COVERAGE_TYPES, coverage)
        + _effects(_TOBACCO, tobacco)
        - 0.35 * np.clip((bmi - 32.0) / 5.0, 0.0, 3.0)
        + np.clip(cond_effect, -1.0, 1.2)
        + _state_effect(states, _HEALTH_STATE)
        - 0.25 * n_missing
    )
    columns = {
        "age": _ints(age, np.zeros(n, dtype=np.bool_)),
        "bmi": _decimals(bmi, bmi_places, miss_bmi),
        "household_size": _ints(household, miss_hh),
        "annual_income": _ints(income, miss_inc),
        "coverage_type": _labels(rng, [c.label for c in _COVERAGE_TYPES], coverage, miss_cov),
        "tobacco_use": _labels(rng, [c.label for c in _TOBACCO], tobacco, miss_tob),
        "current_insurer": _labels(rng, [c.label for c in _INSURERS], insurer, miss_ins),
        "employment_status": _labels(rng, [c.label for c in _EMPLOYMENT], employment, miss_emp),
        "pre_existing_conditions": conditions,
        "location": _locations(rng, city, miss_loc),
    }
    return _Synth(columns, np.asarray(score, dtype=np.float64))


def _life(rng: np.random.Generator, n: int) -> _Synth:
    """Simulate life leads (the rule is in docs/synthetic-data.md)."""
    age = np.clip(np.rint(18.0 + rng.gamma(2.6, 9.0, n)), 18, 89)
    occupation = _draw_occupation(rng, age)
    career = np.exp(-(((age - 50.0) / 28.0) ** 2))
    income = 70000.0 * (0.45 + 0.55 * career) * rng.lognormal(0.0, 0.65, n)
    occ_income = np.where(occupation == _OCC_STUDENT, 0.25, 1.0) * np.where(
        occupation == _OCC_RETIRED, 0.6, 1.0
    )
    income = np.clip(np.rint(income * occ_income / 100.0) * 100.0, 0, 10_000_000)

    young = age < 30
    marital = np.where(
        young,
        _draw(rng, _MARITAL_YOUNG, n),
        _draw(rng, [c.weight for c in _MARITAL], n),
    ).astype(np.intp)
    smoker = _draw(rng, [c.weight for c in _SMOKER], n)
    # Underwriting class from a health score: worse with age and smoking.
    health_score = (
        rng.normal(0.0, 1.0, n)
        - 0.03 * (age - 40.0)
        - 1.5 * (smoker == 1)
        - 0.5 * np.isin(smoker, (3, 4, 5, 6, 7))
    )
    health_class = np.select(
        [health_score > 1.3, health_score > 0.5, health_score > -0.2, health_score > -1.4],
        [0, 1, 2, 3],
        4,
    ).astype(np.intp)
    rare = rng.random(n)
    health_class[rare < 0.01] = 5
    health_class[(rare >= 0.01) & (rare < 0.013)] = 6
    health_class[(rare >= 0.013) & (rare < 0.0134)] = 7

    policy = _draw(rng, [c.weight for c in _POLICY_TYPES], n)
    policy[(age >= 62) & (policy == _POL_TERM) & (rng.random(n) < 0.4)] = _POL_FINAL
    policy[(age < 50) & (policy == _POL_FINAL)] = _POL_TERM
    is_term = (policy == _POL_TERM) | (policy == _POL_ROP)
    term_years = np.where(
        is_term, np.array(_TERM_LENGTHS, dtype=np.float64)[_draw(rng, _TERM_WEIGHTS, n)], 0.0
    )

    multiple = np.where(is_term, 10.0, 4.0) * rng.lognormal(0.0, 0.5, n)
    coverage = np.maximum(income, 15000.0) * multiple
    step = np.where(coverage >= 100000, 25000.0, 5000.0)
    coverage = np.maximum(np.rint(coverage / step) * step, 10000.0)
    final_cover = np.rint(rng.uniform(5, 35, n)) * 1000.0
    coverage = np.where(policy == _POL_FINAL, final_cover, coverage)
    coverage = np.clip(coverage, 1000, 50_000_000)

    city = _draw(rng, [c.weight for c in _CITIES], n)
    states = [_CITIES[c].state for c in city.tolist()]

    miss_cov = _mask(rng, 0.03, n)
    miss_term = _mask(rng, 0.05, n)
    miss_inc = _mask(rng, np.where(income > 150000, 0.2, 0.1), n)
    miss_pol = _mask(rng, 0.03, n)
    miss_smk = _mask(rng, 0.04, n)
    miss_hc = _mask(rng, 0.08, n)
    miss_mar = _mask(rng, 0.05, n)
    miss_occ = _mask(rng, 0.07, n)
    miss_loc = _mask(rng, 0.04, n)
    n_missing = sum(
        m.astype(np.float64) for m in (miss_cov, miss_term, miss_inc, miss_smk, miss_hc, miss_mar)
    )

    cover_ratio = coverage / np.maximum(income, 5000.0)
    married = marital == 0
    score = (
        0.6 * ((cover_ratio >= 5.0) & (cover_ratio <= 15.0))
        - 0.8 * np.clip(np.log(cover_ratio / 20.0), 0.0, 2.0)
        + 0.9 * _hump(age, 40.0, 18.0, -2.0)
        - 0.9 * (is_term & (age + term_years > 80.0))
        + 0.3 * np.clip(np.log(np.maximum(income, 5000.0) / 60000.0), -2.0, 2.0)
        + _effects(_HEALTH_CLASSES, health_class)
        + _effects(_SMOKER, smoker)
        + _effects(_MARITAL, marital)
        + 0.4 * (married & (age < 45))
        + _effects(_POLICY_TYPES, policy)
        + np.array([o.life for o in _OCCUPATIONS])[occupation]
        + _state_effect(states, _LIFE_STATE)
        - 0.25 * n_missing
    )
    columns = {
        "age": _ints(age, np.zeros(n, dtype=np.bool_)),
        "coverage_amount": _ints(coverage, miss_cov),
        "term_years": _ints(term_years, miss_term),
        "annual_income": _ints(income, miss_inc),
        "policy_type": _labels(rng, [c.label for c in _POLICY_TYPES], policy, miss_pol),
        "smoker": _labels(rng, [c.label for c in _SMOKER], smoker, miss_smk),
        "health_class": _labels(rng, [c.label for c in _HEALTH_CLASSES], health_class, miss_hc),
        "marital_status": _labels(rng, [c.label for c in _MARITAL], marital, miss_mar),
        "occupation": _occupations(rng, occupation, miss_occ),
        "location": _locations(rng, city, miss_loc),
    }
    return _Synth(columns, np.asarray(score, dtype=np.float64))


# Column order of each vertical: exactly its features in config/models.yaml (numerical,
# categorical, text), then the target. tests/unit/training/test_synth.py checks this.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "auto": ("age", "driving_years", "vehicle_age", "annual_mileage", "vehicle_make",
             "vehicle_model", "usage_type", "occupation", "location"),
    "home": ("property_age", "square_footage", "property_value", "construction_type",
             "roof_type", "property_type", "address", "security_features"),
    "health": ("age", "bmi", "household_size", "annual_income", "coverage_type", "tobacco_use",
               "current_insurer", "employment_status", "pre_existing_conditions", "location"),
    "life": ("age", "coverage_amount", "term_years", "annual_income", "policy_type", "smoker",
             "health_class", "marital_status", "occupation", "location"),
}  # fmt: skip
_RULES: dict[str, _Rule] = {
    "auto": _Rule(-0.95, 1.6, 0.4),
    "home": _Rule(-0.15, 1.9, 0.4),
    "health": _Rule(-1.4, 1.8, 0.4),
    "life": _Rule(-1.45, 1.6, 0.4),
}
_SIMULATORS: dict[str, Callable[[np.random.Generator, int], _Synth]] = {
    "auto": _auto,
    "home": _home,
    "health": _health,
    "life": _life,
}


def _whole(value: int, message: str, minimum: int) -> int:
    """Return ``value`` as an ``int`` (numpy integers too) or raise ``ValueError``."""
    try:
        number = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        number = None
    if number is None or number < minimum:
        raise ValueError(f"{message}, got {value!r}")
    return number


def _simulate(vertical: str, rows: int, seed: int) -> tuple[list[str], list[list[str]], FloatArray]:
    """Simulate leads and return the header, the rows and each lead's true probability."""
    if vertical not in _SIMULATORS:
        raise ValueError(
            f"unknown vertical {vertical!r} for synthetic data; known: {', '.join(SYNTH_VERTICALS)}"
        )
    rows = _whole(rows, "rows must be a positive integer", 1)
    seed = _whole(seed, "seed must be a non-negative integer", 0)
    rng = np.random.default_rng([seed, _SALT[vertical]])
    synth = _SIMULATORS[vertical](rng, rows)
    rule = _RULES[vertical]
    logit = rule.intercept + rule.scale * synth.score + rng.normal(0.0, rule.noise, rows)
    probability = _sigmoid(logit)
    converted = rng.random(rows) < probability
    names = _COLUMNS[vertical]
    cells = [synth.columns[name] for name in names]
    cells.append(["1" if c else "0" for c in converted.tolist()])
    header = [*names, TARGET_COLUMN]
    return header, [list(row) for row in zip(*cells, strict=True)], probability


def generate(vertical: str, rows: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Return (header, rows) where every cell is a CSV string; "" means missing.

    Args:
        vertical: One of ``SYNTH_VERTICALS``.
        rows: How many leads to simulate (at least 1).
        seed: Seed of the random generator (a non-negative integer); the same
            ``(vertical, rows, seed)`` always gives the same output.

    Returns:
        The header (the vertical's features in config order, then ``converted``) and one
        list of cells per lead, aligned with the header.

    Raises:
        ValueError: ``vertical`` is unknown, ``rows`` is below 1, or ``seed`` is negative.
    """
    header, cells, _ = _simulate(vertical, rows, seed)
    return header, cells


def write_csv(vertical: str, rows: int, seed: int, out: Path) -> None:
    """Write generate(...) with csv.writer (comma delimiter, header first), atomically.

    The file is written to a temporary file in the same directory, flushed to disk and
    then moved over ``out`` (``os.replace`` semantics), so readers never see a partial
    file. Missing parent directories are created.

    Args:
        vertical: One of ``SYNTH_VERTICALS``.
        rows: How many leads to simulate (at least 1).
        seed: Seed of the random generator.
        out: Destination CSV path.

    Raises:
        ValueError: Bad ``vertical``, ``rows`` or ``seed`` (nothing is written).
        OSError: The file cannot be written.
    """
    header, cells = generate(vertical, rows, seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter=",", lineterminator="\n")
            writer.writerow(header)
            writer.writerows(cells)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o644)  # mkstemp makes the file private; a data file is not a secret
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
