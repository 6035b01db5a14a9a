//! The people model and the records each system holds about them.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::census;
use super::vocab::{self, FirstName};
use crate::error::Result;

/// The demo's "today": every generated timestamp is before it, so a seed always gives the same
/// data whatever day it runs.
pub const DEMO_NOW: &str = "2026-06-30T00:00:00Z";

fn now_day() -> i64 {
    day_of(NaiveDate::from_ymd_opt(2026, 6, 30).expect("valid date"))
}

fn day_of(date: NaiveDate) -> i64 {
    date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch"))
        .num_days()
}

fn date_of(day: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .expect("epoch")
        .checked_add_days(Days::new(day.max(0) as u64))
        .expect("date in range")
}

/// Microseconds since the epoch for a day plus seconds into it.
fn micros(day: i64, second: u32) -> i64 {
    (day * 86_400 + second as i64) * 1_000_000
}

fn iso(ts_micros: i64) -> String {
    Utc.timestamp_micros(ts_micros)
        .single()
        .map(|t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Country {
    Us,
    Gb,
    Fr,
    De,
}

impl Country {
    pub fn code(self) -> &'static str {
        match self {
            Country::Us => "US",
            Country::Gb => "GB",
            Country::Fr => "FR",
            Country::De => "DE",
        }
    }
    fn currency(self) -> &'static str {
        match self {
            Country::Us => "USD",
            Country::Gb => "GBP",
            Country::Fr | Country::De => "EUR",
        }
    }
    fn first_names(self) -> &'static [FirstName] {
        match self {
            Country::Us => vocab::US_FIRST,
            Country::Gb => vocab::GB_FIRST,
            Country::Fr => vocab::FR_FIRST,
            Country::De => vocab::DE_FIRST,
        }
    }
    fn last_names(self) -> &'static [&'static str] {
        match self {
            Country::Us => vocab::US_LAST,
            Country::Gb => vocab::GB_LAST,
            Country::Fr => vocab::FR_LAST,
            Country::De => vocab::DE_LAST,
        }
    }
    fn domains(self) -> &'static [&'static str] {
        match self {
            Country::Us => vocab::US_DOMAINS,
            Country::Gb => vocab::GB_DOMAINS,
            Country::Fr => vocab::FR_DOMAINS,
            Country::De => vocab::DE_DOMAINS,
        }
    }
}

/// A phone number as its country calling code and national significant number.
#[derive(Debug, Clone)]
pub struct Phone {
    country: Country,
    nsn: String,
}

impl Phone {
    /// The E.164 form, as ground truth.
    pub fn e164(&self) -> String {
        format!("+{}{}", calling_code(self.country), self.nsn)
    }
}

fn calling_code(c: Country) -> &'static str {
    match c {
        Country::Us => "1",
        Country::Gb => "44",
        Country::Fr => "33",
        Country::De => "49",
    }
}

#[derive(Debug)]
pub struct Address {
    number: u32,
    street: &'static str,
    street_type: (&'static str, &'static str),
    unit: Option<u32>,
    city: &'static str,
    region: &'static str,
    postal_code: String,
    country: Country,
}

#[derive(Debug)]
pub struct Household {
    id: u64,
    address: Address,
    landline: Option<Phone>,
    family_email: Option<String>,
    shared_device: Option<String>,
}

#[derive(Debug)]
pub struct Person {
    idx: u64,
    household: Arc<Household>,
    first: FirstName,
    last: &'static str,
    birth: NaiveDate,
    email: String,
    mobile: Phone,
    engagement: f64,
    since_day: i64,
    churn_day: Option<i64>,
    devices: Vec<String>,
}

impl Person {
    pub fn id(&self) -> String {
        format!("P{:09}", self.idx)
    }
    fn country(&self) -> Country {
        self.household.address.country
    }
    fn active_until(&self) -> i64 {
        self.churn_day.unwrap_or(now_day())
    }
}

// ---------------------------------------------------------------------------------------------
// Rows of each table.

#[derive(Debug, Default)]
pub struct CrmRow {
    pub contact_id: String,
    pub salutation: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub loyalty_number: Option<String>,
    pub birth_date: Option<String>,
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Default)]
pub struct PosCustomerRow {
    pub pos_customer_id: String,
    pub loyalty_number: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub postal_code: Option<String>,
    pub country: String,
    pub home_store_id: String,
    pub created_at: i64,
}

#[derive(Debug, Default)]
pub struct OrderRow {
    pub order_id: String,
    pub pos_customer_id: String,
    pub store_id: String,
    pub channel: &'static str,
    pub order_ts: i64,
    pub category: &'static str,
    pub items: i32,
    pub amount_cents: i64,
    pub currency: &'static str,
    pub order_year: i32,
}

#[derive(Debug, Default)]
pub struct WebEventRow {
    pub event_id: String,
    pub anonymous_id: String,
    pub user_id: Option<String>,
    pub event_type: &'static str,
    pub event_ts: String,
    pub page: &'static str,
    pub email: Option<String>,
    /// Profile traits the account form sends with the signup event (an `identify` call).
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub postal_code: Option<String>,
    pub loyalty_number: Option<String>,
    pub country: &'static str,
}

#[derive(Debug, Default)]
pub struct EmailEventRow {
    pub email: String,
    pub campaign_id: String,
    pub event_type: &'static str,
    pub event_ts: i64,
}

#[derive(Debug, Default)]
pub struct TicketRow {
    pub ticket_id: String,
    pub requester_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub loyalty_number: Option<String>,
    pub channel: &'static str,
    pub subject: &'static str,
    pub status: &'static str,
    pub satisfaction: Option<i32>,
    pub created_at: String,
}

#[derive(Debug, Default)]
pub struct ConsentRow {
    pub consent_id: String,
    pub subject_email: Option<String>,
    pub subject_phone: Option<String>,
    pub purpose: &'static str,
    pub channel: &'static str,
    pub status: &'static str,
    pub recorded_at: i64,
    pub source: &'static str,
}

#[derive(Debug, Default)]
pub struct TruthRecordRow {
    pub source: &'static str,
    pub record_id: String,
    pub true_person_id: String,
}

#[derive(Debug, Default)]
pub struct TruthPersonRow {
    pub true_person_id: String,
    pub household_id: String,
    pub country: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub email: String,
    pub phone_e164: String,
    pub birth_date: i32,
    pub customer_since: i32,
    pub churned: bool,
    pub churn_date: Option<i32>,
    pub engagement: f64,
}

/// Profile fields a web account holds.
#[derive(Debug, Default)]
struct Traits {
    loyalty_number: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    postal_code: Option<String>,
}

/// All rows generated for one chunk of people.
#[derive(Debug, Default)]
pub struct Chunk {
    pub people: u64,
    pub crm: Vec<CrmRow>,
    pub pos_customers: Vec<PosCustomerRow>,
    pub orders: Vec<OrderRow>,
    pub web_events: Vec<WebEventRow>,
    pub email_events: Vec<EmailEventRow>,
    pub tickets: Vec<TicketRow>,
    pub consents: Vec<ConsentRow>,
    pub truth_records: Vec<TruthRecordRow>,
    pub truth_people: Vec<TruthPersonRow>,
}

// ---------------------------------------------------------------------------------------------

/// A bijection on 40-bit numbers: record ids look random but never collide.
fn scramble(x: u64, salt: u64) -> u64 {
    const MASK: u64 = (1 << 40) - 1;
    let mut v = (x ^ salt) & MASK;
    v = v.wrapping_mul(0x009E_3779_B97F) & MASK; // odd multiplier: invertible mod 2^40
    v ^= v >> 17;
    v = v.wrapping_mul(0x00C2_B2AE_3D27) & MASK;
    v ^= v >> 13;
    v
}

fn record_id(prefix: &str, n: u64, salt: u64) -> String {
    format!("{prefix}{:010X}", scramble(n, salt))
}

type FixedState = BuildHasherDefault<DefaultHasher>;

/// Generates people and their records, chunk after chunk, from one seeded stream.
pub struct Generator {
    rng: ChaCha8Rng,
    next_person: u64,
    next_household: u64,
    seq: u64,
    mailboxes: HashSet<u64, FixedState>,
    pending: Vec<Person>,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_person: 0,
            next_household: 0,
            seq: 0,
            mailboxes: HashSet::default(),
            pending: Vec::new(),
        }
    }

    fn p(&mut self, probability: f64) -> bool {
        self.rng.random_bool(probability.clamp(0.0, 1.0))
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    /// A first name: half the time from the country's list (with the diminutives people
    /// use), otherwise by real frequency from the census (see [`census`]).
    fn first_name(&mut self, country: Country) -> FirstName {
        if self.p(0.5) {
            self.pick_skewed(country.first_names())
        } else {
            census::first_name(&mut self.rng)
        }
    }

    /// A surname: a quarter of the time from the country's list, otherwise by real frequency
    /// from the census's long tail, so that namesakes are as common as in a real customer base.
    fn last_name(&mut self, country: Country) -> &'static str {
        if self.p(0.25) {
            self.pick_skewed(country.last_names())
        } else {
            census::last_name(&mut self.rng)
        }
    }

    /// Picks with a bias to the front of the list (common names, big domains).
    fn pick_skewed<T: Copy>(&mut self, items: &[T]) -> T {
        let u: f64 = self.rng.random();
        items[((u * u) * items.len() as f64) as usize % items.len()]
    }

    fn normal(&mut self) -> f64 {
        let u1: f64 = self.rng.random::<f64>().max(1e-12);
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = 1.0;
        loop {
            p *= self.rng.random::<f64>();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.rng.random_range(0..10u8)))
            .collect()
    }

    fn country(&mut self) -> Country {
        let u: f64 = self.rng.random();
        match u {
            u if u < 0.55 => Country::Us,
            u if u < 0.75 => Country::Gb,
            u if u < 0.90 => Country::Fr,
            _ => Country::De,
        }
    }

    fn phone(&mut self, country: Country, mobile: bool) -> Phone {
        let nsn = match (country, mobile) {
            (Country::Us, _) => {
                let area = self.pick(vocab::US_AREA_CODES);
                let exchange = loop {
                    let e = self.rng.random_range(201..=999u32);
                    // N11 codes and 555 are not assignable.
                    if e % 100 != 11 && e != 555 {
                        break e;
                    }
                };
                format!("{area}{exchange}{}", self.digits(4))
            }
            (Country::Gb, true) => format!("7{}{}", self.rng.random_range(4..=9u8), self.digits(8)),
            (Country::Gb, false) => {
                format!("20{}{}", self.rng.random_range(3..=8u8), self.digits(7))
            }
            (Country::Fr, true) => format!("{}{}", self.pick(&["6", "7"]), self.digits(8)),
            (Country::Fr, false) => {
                format!("{}{}", self.pick(&["1", "2", "4", "5"]), self.digits(8))
            }
            (Country::De, true) => match self.rng.random_range(0..3) {
                0 => format!("151{}", self.digits(8)),
                1 => format!("176{}", self.digits(8)),
                _ => format!("170{}", self.digits(7)),
            },
            (Country::De, false) => format!("30{}", self.digits(8)),
        };
        Phone { country, nsn }
    }

    fn address(&mut self, country: Country) -> Address {
        let (streets, types, number) = match country {
            Country::Us => (
                vocab::US_STREETS,
                vocab::US_STREET_TYPES,
                self.rng.random_range(1..9999),
            ),
            Country::Gb => (
                vocab::GB_STREETS,
                vocab::GB_STREET_TYPES,
                self.rng.random_range(1..300),
            ),
            Country::Fr => (
                vocab::FR_STREETS,
                vocab::FR_STREET_TYPES,
                self.rng.random_range(1..200),
            ),
            Country::De => (
                vocab::DE_STREETS,
                vocab::DE_STREET_TYPES,
                self.rng.random_range(1..150),
            ),
        };
        let street = self.pick(streets);
        let street_type = self.pick(types);
        let unit = self.p(0.2).then(|| self.rng.random_range(1..40));
        let (city, region, postal_code) = match country {
            Country::Us => {
                let (c, s, z) = self.pick(vocab::US_CITIES);
                (c, s, format!("{z}{:02}", self.rng.random_range(1..99)))
            }
            Country::Gb => {
                let (c, s, area) = self.pick(vocab::GB_CITIES);
                let district = self.rng.random_range(1..20);
                let sector = self.rng.random_range(1..9);
                let unit: String = (0..2)
                    .map(|_| char::from(b"ABDEFGHJLNPQRSTUWXYZ"[self.rng.random_range(0..20)]))
                    .collect();
                (c, s, format!("{area}{district} {sector}{unit}"))
            }
            Country::Fr => {
                let (c, s, d) = self.pick(vocab::FR_CITIES);
                (c, s, format!("{d}{:03}", self.rng.random_range(0..20) * 10))
            }
            Country::De => {
                let (c, s, p) = self.pick(vocab::DE_CITIES);
                (c, s, format!("{p}{:03}", self.rng.random_range(100..999)))
            }
        };
        Address {
            number,
            street,
            street_type,
            unit,
            city,
            region,
            postal_code,
            country,
        }
    }

    /// A personal mailbox, unique across the whole population (two people never own one).
    fn email(&mut self, first: &str, last: &str, birth: NaiveDate, country: Country) -> String {
        let f = ascii_token(first);
        let l = ascii_token(last);
        let f = if f.is_empty() { "x".to_string() } else { f };
        let l = if l.is_empty() { "y".to_string() } else { l };
        let yy = format!("{:02}", birth.format("%y"));
        let local = match self.rng.random_range(0..9) {
            0 => format!("{f}.{l}"),
            1 => format!("{f}{l}"),
            2 => format!("{}{l}", &f[..1]),
            3 => format!("{f}_{l}"),
            4 => format!("{f}.{l}{yy}"),
            5 => format!("{f}{}{}", &l[..1], self.digits(2)),
            6 => format!("{l}.{f}"),
            7 => format!("{f}{}", self.digits(3)),
            _ => format!("{}.{l}", &f[..1]),
        };
        let domains = country.domains();
        let domain = if self.p(0.4) {
            "gmail.com"
        } else {
            self.pick_skewed(domains)
        };
        let mut candidate = format!("{local}@{domain}");
        // Popular names run out of short suffixes at scale: every few collisions the suffix
        // grows by a digit, so the search always ends (and stays short).
        for attempt in 0usize.. {
            let key = FixedState::default().hash_one(mailbox_key(&candidate));
            if self.mailboxes.insert(key) {
                break;
            }
            candidate = format!("{local}{}@{domain}", self.digits(2 + attempt / 4));
        }
        candidate
    }

    fn household(&mut self) -> (Arc<Household>, usize, Country, &'static str) {
        let country = self.country();
        let size = match self.rng.random::<f64>() {
            u if u < 0.45 => 1,
            u if u < 0.75 => 2,
            u if u < 0.90 => 3,
            _ => 4,
        };
        let last = self.last_name(country);
        let id = self.next_household;
        self.next_household += 1;
        let address = self.address(country);
        let landline = self.p(0.35).then(|| self.phone(country, false));
        let family_email = (size > 1 && self.p(0.25)).then(|| {
            let l = ascii_token(last);
            let key = self.digits(3);
            format!(
                "{}family{key}@{}",
                if l.is_empty() { "the" } else { &l },
                self.pick_skewed(country.domains())
            )
        });
        let shared_device = (size > 1 && self.p(0.2)).then(|| record_id("dev-", id, 0xD3));
        (
            Arc::new(Household {
                id,
                address,
                landline,
                family_email,
                shared_device,
            }),
            size,
            country,
            last,
        )
    }

    /// A household member. Members get different first names, as siblings and partners do,
    /// except for the occasional namesake (a Junior, born 20 to 35 years after the first member)
    /// — the hard case for matching, kept at a realistic rate.
    fn person(
        &mut self,
        household: &Arc<Household>,
        country: Country,
        family_last: &'static str,
        members: &[Person],
    ) -> Person {
        let idx = self.next_person;
        self.next_person += 1;
        // One junior at most, and only of a member old enough to have one.
        let namesake = members
            .first()
            .filter(|senior| {
                members[1..].iter().all(|m| m.first.0 != senior.first.0)
                    && day_of(senior.birth) < now_day() - 38 * 365
            })
            .filter(|_| self.p(0.03));
        let first = match namesake {
            Some(senior) => senior.first,
            None => {
                let mut first = self.first_name(country);
                for _ in 0..20 {
                    if !members.iter().any(|m| m.first.0 == first.0) {
                        break;
                    }
                    first = self.first_name(country);
                }
                first
            }
        };
        let last = match namesake {
            Some(senior) => senior.last,
            None if self.p(0.85) => family_last,
            None => self.last_name(country),
        };
        let birth = match namesake {
            Some(senior) => (senior.birth + Days::new(self.rng.random_range(7_300..12_800)))
                .min(date_of(now_day() - 18 * 365)),
            None => date_of(
                day_of(NaiveDate::from_ymd_opt(1945, 1, 1).expect("date"))
                    + self.rng.random_range(0..22_000),
            ),
        };
        let email = self.email(first.0, last, birth, country);
        let mobile = self.phone(country, true);
        let engagement = (0.6 * self.normal()).exp();
        let since_day = now_day() - self.rng.random_range(30..6 * 365);
        // Low engagement makes churn likelier: the signal a churn model can learn.
        let churn_p = (0.45 / (1.0 + engagement)).clamp(0.05, 0.6);
        let churn_day = (self.p(churn_p) && now_day() - since_day > 200)
            .then(|| self.rng.random_range(since_day + 90..now_day() - 60));
        let mut devices = vec![record_id("dev-", idx, 0xA1)];
        if self.p(0.5) {
            devices.push(record_id("dev-", idx, 0xB2));
        }
        if let Some(shared) = &household.shared_device {
            devices.push(shared.clone());
        }
        Person {
            idx,
            household: household.clone(),
            first,
            last,
            birth,
            email,
            mobile,
            engagement,
            since_day,
            churn_day,
            devices,
        }
    }

    /// Generates `n` people and everything the systems hold on them.
    pub fn chunk(&mut self, n: u64) -> Result<Chunk> {
        let mut people = std::mem::take(&mut self.pending);
        while (people.len() as u64) < n {
            let (household, size, country, last) = self.household();
            let start = people.len();
            for _ in 0..size {
                let person = self.person(&household, country, last, &people[start..]);
                people.push(person);
            }
        }
        // Whole households stay together; people past `n` open the next chunk.
        self.pending = people.split_off(n as usize);
        let mut chunk = Chunk {
            people: n,
            ..Chunk::default()
        };
        for person in &people {
            self.records(person, &mut chunk);
        }
        // Devices nobody ever logged in from: pure anonymous traffic.
        for _ in 0..n / 4 {
            let device = record_id("dev-", self.next_seq(), 0xE5);
            let country = self.country();
            for _ in 0..self.rng.random_range(1..4) {
                let day = now_day() - self.rng.random_range(1..400);
                chunk.web_events.push(WebEventRow {
                    event_id: record_id("E", self.next_seq(), 0x77),
                    anonymous_id: device.clone(),
                    user_id: None,
                    event_type: "page_view",
                    event_ts: iso(micros(day, self.rng.random_range(0..86_400))),
                    page: self.pick(vocab::PAGES),
                    country: country.code(),
                    ..WebEventRow::default()
                });
            }
        }
        Ok(chunk)
    }

    fn records(&mut self, p: &Person, chunk: &mut Chunk) {
        let pid = p.id();
        let country = p.country();
        chunk.truth_people.push(TruthPersonRow {
            true_person_id: pid.clone(),
            household_id: format!("H{:09}", p.household.id),
            country: country.code(),
            first_name: p.first.0,
            last_name: p.last,
            email: p.email.clone(),
            phone_e164: p.mobile.e164(),
            birth_date: day_of(p.birth) as i32,
            customer_since: p.since_day as i32,
            churned: p.churn_day.is_some(),
            churn_date: p.churn_day.map(|d| d as i32),
            engagement: p.engagement,
        });

        // The emails this person types into forms, as each system keeps them.
        let in_crm = self.p(0.7);
        let in_pos = self.p(0.55);
        let on_web = self.p(0.6);
        // A loyalty member's card number: printed on the till record, and given again wherever
        // the programme asks for it (the CRM's member field, the web account, the help desk).
        let card = in_pos.then(|| self.loyalty_number());

        if in_crm {
            let copies = if self.p(0.05) { 2 } else { 1 };
            for _ in 0..copies {
                let row = self.crm_row(p, card.as_deref());
                chunk.truth_records.push(TruthRecordRow {
                    source: "crm_contacts",
                    record_id: row.contact_id.clone(),
                    true_person_id: pid.clone(),
                });
                chunk.crm.push(row);
            }
        }
        if in_pos {
            let copies = if self.p(0.03) { 2 } else { 1 };
            for copy in 0..copies {
                // A second till record is a second card, signed up for at another visit.
                let number = match (copy, &card) {
                    (0, Some(card)) => card.clone(),
                    _ => self.loyalty_number(),
                };
                let row = self.pos_row(p, number);
                chunk.truth_records.push(TruthRecordRow {
                    source: "pos_customers",
                    record_id: row.pos_customer_id.clone(),
                    true_person_id: pid.clone(),
                });
                self.orders(p, &row, chunk);
                chunk.pos_customers.push(row);
            }
        }
        let mut esp_email = None;
        if on_web {
            let user_id = record_id("U", p.idx, 0x55);
            chunk.truth_records.push(TruthRecordRow {
                source: "web_users",
                record_id: user_id.clone(),
                true_person_id: pid.clone(),
            });
            let signup_email = self.email_variant(p, false);
            esp_email = Some(signup_email.trim().to_lowercase());
            self.web_events(p, &user_id, &signup_email, card.as_deref(), chunk);
        }
        if let Some(crm) = chunk.crm.last().filter(|r| in_crm && r.email.is_some()) {
            esp_email = crm.email.as_ref().map(|e| e.trim().to_lowercase());
        }
        if let Some(email) = &esp_email {
            self.email_events(p, email, chunk);
            self.consents(p, email, chunk);
        }
        let ticket_p = 0.10 + if p.churn_day.is_some() { 0.2 } else { 0.0 };
        if self.p(ticket_p) {
            for _ in 0..self.rng.random_range(1..=3) {
                let row = self.ticket(p, card.as_deref());
                chunk.truth_records.push(TruthRecordRow {
                    source: "support_tickets",
                    record_id: row.ticket_id.clone(),
                    true_person_id: pid.clone(),
                });
                chunk.tickets.push(row);
            }
        }
    }

    // --- noise -------------------------------------------------------------------------------

    fn typo(&mut self, s: &str) -> String {
        let mut chars: Vec<char> = s.chars().collect();
        if chars.len() < 3 {
            return s.to_string();
        }
        let i = self.rng.random_range(1..chars.len() - 1);
        match self.rng.random_range(0..4) {
            0 => {
                chars.remove(i);
            }
            1 => chars.swap(i, i + 1),
            2 => chars[i] = char::from(b'a' + self.rng.random_range(0..26u8)),
            _ => chars.insert(i, chars[i]),
        }
        chars.into_iter().collect()
    }

    fn casing(&mut self, s: &str) -> String {
        match self.rng.random_range(0..20) {
            0 | 1 => s.to_uppercase(),
            2 => s.to_lowercase(),
            3 => format!(" {s}"),
            4 => format!("{s}  "),
            _ => s.to_string(),
        }
    }

    fn first_name_variant(&mut self, p: &Person) -> String {
        let (name, _, nicknames) = p.first;
        let base = if !nicknames.is_empty() && self.p(0.12) {
            self.pick(nicknames).to_string()
        } else {
            name.to_string()
        };
        let base = if self.p(0.03) { self.typo(&base) } else { base };
        self.casing(&base)
    }

    fn last_name_variant(&mut self, p: &Person) -> String {
        let base = if self.p(0.03) {
            self.typo(p.last)
        } else {
            p.last.to_string()
        };
        self.casing(&base)
    }

    /// The person's email as typed into some form: case, gmail dots and plus tags, a family
    /// address instead of their own now and then.
    fn email_variant(&mut self, p: &Person, allow_family: bool) -> String {
        if allow_family
            && let Some(family) = &p.household.family_email
            && self.p(0.3)
        {
            return family.clone();
        }
        let (local, domain) = p.email.split_once('@').expect("generated emails have an @");
        let mut local = local.to_string();
        let mut domain = domain.to_string();
        if domain == "gmail.com" {
            if self.p(0.12) {
                local = if local.contains('.') {
                    local.replace('.', "")
                } else if local.len() > 3 {
                    format!("{}.{}", &local[..2], &local[2..])
                } else {
                    local
                };
            }
            if self.p(0.08) {
                local = format!("{local}+{}", self.pick(&["shop", "news", "deals", "promo"]));
            }
            if self.p(0.03) {
                domain = "googlemail.com".into();
            }
        }
        let email = format!("{local}@{domain}");
        match self.rng.random_range(0..12) {
            0 => email.to_uppercase(),
            1 => {
                let mut c = email.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            }
            2 => format!(" {email} "),
            _ => email,
        }
    }

    fn phone_variant(&mut self, phone: &Phone) -> String {
        let n = &phone.nsn;
        let cc = calling_code(phone.country);
        match phone.country {
            Country::Us => {
                let (a, e, l) = (&n[0..3], &n[3..6], &n[6..10]);
                match self.rng.random_range(0..7) {
                    0 => format!("({a}) {e}-{l}"),
                    1 => format!("{a}-{e}-{l}"),
                    2 => format!("{a}.{e}.{l}"),
                    3 => format!("+1 {a} {e} {l}"),
                    4 => format!("1{a}{e}{l}"),
                    5 => format!("+1-{a}-{e}-{l}"),
                    _ => format!("{a}{e}{l}"),
                }
            }
            Country::Gb => match self.rng.random_range(0..5) {
                0 => format!("0{} {}", &n[..4], &n[4..]),
                1 => format!("+44 {} {}", &n[..4], &n[4..]),
                2 => format!("+44{n}"),
                3 => format!("0044 {} {} {}", &n[..4], &n[4..7], &n[7..]),
                _ => format!("+44 (0){n}"),
            },
            Country::Fr => {
                let pairs: Vec<&str> = (0..4).map(|i| &n[1 + 2 * i..3 + 2 * i]).collect();
                match self.rng.random_range(0..5) {
                    0 => format!("0{} {}", &n[..1], pairs.join(" ")),
                    1 => format!("0{n}"),
                    2 => format!("+33 {} {}", &n[..1], pairs.join(" ")),
                    3 => format!("+33{n}"),
                    _ => format!("0{}.{}", &n[..1], pairs.join(".")),
                }
            }
            Country::De => match self.rng.random_range(0..4) {
                0 => format!("0{} {}", &n[..3], &n[3..]),
                1 => format!("+49 {} {}", &n[..3], &n[3..]),
                2 => format!("+{cc}{n}"),
                _ => format!("0{}/{}", &n[..3], &n[3..]),
            },
        }
    }

    fn street_line(&mut self, a: &Address) -> String {
        let (full, short) = a.street_type;
        let kind = if self.p(0.4) { short } else { full };
        let unit = a.unit.map(|u| match a.country {
            Country::Us => format!(" {} {u}", self.pick(&["Apt", "Apt.", "Unit", "#", "Suite"])),
            Country::Gb => format!(", Flat {u}"),
            Country::Fr => format!(", Appt {u}"),
            Country::De => format!(", Whg. {u}"),
        });
        let line = match a.country {
            Country::Us | Country::Gb => format!("{} {} {kind}", a.number, a.street),
            Country::Fr => format!("{} {kind} {}", a.number, a.street),
            Country::De => format!("{}{kind} {}", a.street, a.number),
        };
        let line = format!("{line}{}", unit.unwrap_or_default());
        self.casing(&line)
    }

    fn country_spelling(&mut self, c: Country) -> String {
        let spellings = vocab::COUNTRY_SPELLINGS
            .iter()
            .find(|(code, _)| *code == c.code())
            .map(|(_, s)| *s)
            .unwrap_or(&[]);
        self.pick(spellings).to_string()
    }

    fn timestamp_between(&mut self, from_day: i64, to_day: i64) -> i64 {
        let day = if to_day > from_day {
            self.rng.random_range(from_day..to_day)
        } else {
            from_day
        };
        micros(day, self.rng.random_range(0..86_400))
    }

    // --- systems -----------------------------------------------------------------------------

    fn loyalty_number(&mut self) -> String {
        format!("LY{}", self.digits(10))
    }

    /// A card number as someone types or reads it out: spaced in groups, dashed after the
    /// prefix, or in lower case.
    fn loyalty_variant(&mut self, card: &str) -> String {
        let digits = &card[2..];
        match self.rng.random_range(0..8) {
            0 => format!("LY {} {} {}", &digits[..4], &digits[4..8], &digits[8..]),
            1 => card.to_lowercase(),
            2 => format!("LY-{digits}"),
            _ => card.to_string(),
        }
    }

    fn crm_row(&mut self, p: &Person, card: Option<&str>) -> CrmRow {
        let created = self.timestamp_between(p.since_day - 30, p.since_day + 30);
        let updated = self.timestamp_between(created / 86_400_000_000, now_day());
        let phone = if self.p(0.2) {
            None
        } else if let Some(landline) = p.household.landline.clone().filter(|_| self.p(0.15)) {
            Some(self.phone_variant(&landline))
        } else {
            Some(self.phone_variant(&p.mobile))
        };
        let birth_date = (!self.p(0.3)).then(|| match self.rng.random_range(0..10) {
            0 => p.birth.format("%m/%d/%Y").to_string(),
            1 => p.birth.format("%d.%m.%Y").to_string(),
            2 => p.birth.format("%Y%m%d").to_string(),
            _ => p.birth.format("%Y-%m-%d").to_string(),
        });
        let a = &p.household.address;
        CrmRow {
            contact_id: record_id("C", self.next_seq(), 0x11),
            salutation: self
                .p(0.4)
                .then(|| self.pick(vocab::HONORIFICS).to_string()),
            first_name: (!self.p(0.01)).then(|| self.first_name_variant(p)),
            last_name: (!self.p(0.01)).then(|| self.last_name_variant(p)),
            email: (!self.p(0.12)).then(|| self.email_variant(p, true)),
            phone,
            loyalty_number: card
                .filter(|_| self.p(0.6))
                .map(|c| self.loyalty_variant(c)),
            birth_date,
            street: (!self.p(0.1)).then(|| self.street_line(a)),
            city: (!self.p(0.1)).then(|| self.casing(a.city)),
            state: (!self.p(0.3)).then(|| a.region.to_string()),
            postal_code: (!self.p(0.08)).then(|| a.postal_code.clone()),
            country: (!self.p(0.1)).then(|| self.country_spelling(a.country)),
            created_at: iso(created),
            updated_at: iso(updated),
        }
    }

    fn pos_row(&mut self, p: &Person, loyalty_number: String) -> PosCustomerRow {
        let first = self.first_name_variant(p);
        let last = self.last_name_variant(p);
        // The till system predates Unicode: a third of names lose their accents.
        let (first, last) = if self.p(0.33) {
            (deunicode::deunicode(&first), deunicode::deunicode(&last))
        } else {
            (first, last)
        };
        let full_name = match self.rng.random_range(0..10) {
            0..=2 => format!("{}, {}", last.trim().to_uppercase(), first.trim()),
            3 => format!(
                "{} {}. {}",
                first.trim(),
                char::from(b'A' + self.rng.random_range(0..26u8)),
                last.trim()
            ),
            _ => format!("{} {}", first.trim(), last.trim()),
        };
        let stores: Vec<&str> = vocab::STORES
            .iter()
            .filter(|(_, c)| *c == p.country().code())
            .map(|(s, _)| *s)
            .collect();
        PosCustomerRow {
            pos_customer_id: record_id("POS", self.next_seq(), 0x22),
            loyalty_number,
            full_name: (!self.p(0.02)).then_some(full_name),
            email: (!self.p(0.3)).then(|| self.email_variant(p, true)),
            phone: (!self.p(0.15)).then(|| self.phone_variant(&p.mobile.clone())),
            postal_code: (!self.p(0.2)).then(|| p.household.address.postal_code.clone()),
            country: p.country().code().to_string(),
            home_store_id: self.pick(&stores).to_string(),
            created_at: self.timestamp_between(p.since_day, p.since_day + 60),
        }
    }

    fn orders(&mut self, p: &Person, customer: &PosCustomerRow, chunk: &mut Chunk) {
        let start = customer.created_at / 86_400_000_000;
        let end = p.active_until();
        let years = ((end - start) as f64 / 365.0).max(0.0);
        let count = self.poisson(p.engagement * 4.0 * years).min(200);
        for _ in 0..count {
            let ts = self.timestamp_between(start, end);
            let (category, basket) = self.pick(vocab::CATEGORIES);
            let amount = basket * (0.5 * self.normal()).exp();
            let online = self.p(0.3);
            let year = date_of(ts / 86_400_000_000)
                .format("%Y")
                .to_string()
                .parse()
                .unwrap_or(2026);
            chunk.orders.push(OrderRow {
                order_id: record_id("O", self.next_seq(), 0x33),
                pos_customer_id: customer.pos_customer_id.clone(),
                store_id: if online {
                    "ONLINE".into()
                } else {
                    customer.home_store_id.clone()
                },
                channel: if online { "online" } else { "store" },
                order_ts: ts,
                category,
                items: self.rng.random_range(1..6),
                amount_cents: (amount * 100.0).round().max(100.0) as i64,
                currency: p.country().currency(),
                order_year: year,
            });
        }
    }

    fn web_events(
        &mut self,
        p: &Person,
        user_id: &str,
        signup_email: &str,
        card: Option<&str>,
        chunk: &mut Chunk,
    ) {
        let signup_day = self
            .rng
            .random_range(p.since_day..p.since_day + 30)
            .min(now_day() - 1);
        let end = p.active_until().max(signup_day + 1);
        let sessions = self.poisson(p.engagement * 6.0).clamp(1, 40);
        let country = p.country().code();
        for s in 0..sessions {
            let device = self
                .pick(&p.devices.iter().map(String::as_str).collect::<Vec<_>>())
                .to_string();
            let day = if s == 0 {
                signup_day
            } else {
                self.rng.random_range(signup_day..end)
            };
            let mut second = self.rng.random_range(0..80_000);
            let mut logged_in = false;
            for e in 0..self.rng.random_range(1..6) {
                let mut traits = Traits::default();
                let (event_type, email) = if s == 0 && e == 1 {
                    logged_in = true;
                    traits = self.account_traits(p, card);
                    ("signup", Some(signup_email.to_string()))
                } else if s > 0 && e == 1 && self.p(0.5) {
                    logged_in = true;
                    ("login", Some(self.email_variant(p, false)))
                } else {
                    (
                        self.pick(&[
                            "page_view",
                            "page_view",
                            "product_view",
                            "add_to_cart",
                            "search",
                        ]),
                        None,
                    )
                };
                second += self.rng.random_range(5..300);
                chunk.web_events.push(WebEventRow {
                    event_id: record_id("E", self.next_seq(), 0x77),
                    anonymous_id: device.clone(),
                    user_id: logged_in.then(|| user_id.to_string()),
                    event_type,
                    event_ts: iso(micros(day, second)),
                    page: if event_type == "signup" {
                        "/account/signup"
                    } else {
                        self.pick(vocab::PAGES)
                    },
                    email,
                    first_name: traits.first_name,
                    last_name: traits.last_name,
                    phone: traits.phone,
                    postal_code: traits.postal_code,
                    loyalty_number: traits.loyalty_number,
                    country,
                });
            }
        }
    }

    /// What the signup form asks for: the name (most people fill it in), and the optional phone,
    /// delivery postcode and loyalty card that fewer give.
    fn account_traits(&mut self, p: &Person, card: Option<&str>) -> Traits {
        Traits {
            loyalty_number: card
                .filter(|_| self.p(0.5))
                .map(|c| self.loyalty_variant(c)),
            first_name: self.p(0.85).then(|| self.first_name_variant(p)),
            last_name: self.p(0.85).then(|| self.last_name_variant(p)),
            phone: self.p(0.3).then(|| self.phone_variant(&p.mobile.clone())),
            postal_code: self.p(0.4).then(|| p.household.address.postal_code.clone()),
        }
    }

    fn email_events(&mut self, p: &Person, email: &str, chunk: &mut Chunk) {
        let end = p.active_until();
        let campaigns = self.rng.random_range(3..15);
        let open_p = (0.12 * p.engagement).clamp(0.02, 0.8);
        let mut unsubscribed = false;
        for _ in 0..campaigns {
            if unsubscribed {
                break;
            }
            let ts = self.timestamp_between(p.since_day, now_day());
            let week = date_of(ts / 86_400_000_000).format("%G-W%V").to_string();
            let campaign_id = format!("CMP-{week}");
            chunk.email_events.push(EmailEventRow {
                email: email.to_string(),
                campaign_id: campaign_id.clone(),
                event_type: "sent",
                event_ts: ts,
            });
            // After churning, people stop opening.
            let active = ts / 86_400_000_000 <= end;
            if active && self.p(open_p) {
                chunk.email_events.push(EmailEventRow {
                    email: email.to_string(),
                    campaign_id: campaign_id.clone(),
                    event_type: "open",
                    event_ts: ts + self.rng.random_range(60..86_400) * 1_000_000,
                });
                if self.p(0.25) {
                    chunk.email_events.push(EmailEventRow {
                        email: email.to_string(),
                        campaign_id: campaign_id.clone(),
                        event_type: "click",
                        event_ts: ts + self.rng.random_range(86_400..90_000) * 1_000_000,
                    });
                }
            } else if self.p(0.02) {
                unsubscribed = true;
                chunk.email_events.push(EmailEventRow {
                    email: email.to_string(),
                    campaign_id,
                    event_type: "unsubscribe",
                    event_ts: ts + 3_600_000_000,
                });
            }
        }
    }

    fn consents(&mut self, p: &Person, email: &str, chunk: &mut Chunk) {
        const PURPOSES: [(&str, &str, f64); 4] = [
            ("email_marketing", "email", 0.7),
            ("ads_personalization", "ads", 0.55),
            ("analytics", "web", 0.8),
            ("sms_marketing", "sms", 0.3),
        ];
        for (purpose, channel, grant_p) in PURPOSES {
            if !self.p(grant_p) {
                continue;
            }
            let source = self.pick(&["web_form", "crm", "pos_signup"]);
            let phone = (channel == "sms").then(|| p.mobile.e164());
            let granted_at = self.timestamp_between(p.since_day, p.since_day + 20);
            chunk.consents.push(ConsentRow {
                consent_id: record_id("CS", self.next_seq(), 0x44),
                subject_email: Some(email.to_string()),
                subject_phone: phone.clone(),
                purpose,
                channel,
                status: "granted",
                recorded_at: granted_at,
                source,
            });
            if self.p(0.1) {
                chunk.consents.push(ConsentRow {
                    consent_id: record_id("CS", self.next_seq(), 0x44),
                    subject_email: Some(email.to_string()),
                    subject_phone: phone,
                    purpose,
                    channel,
                    status: "withdrawn",
                    recorded_at: self.timestamp_between(granted_at / 86_400_000_000 + 1, now_day()),
                    source: "preference_center",
                });
            }
        }
    }

    fn ticket(&mut self, p: &Person, card: Option<&str>) -> TicketRow {
        let first = self.first_name_variant(p);
        let last = self.last_name_variant(p);
        let name = if self.p(0.2) {
            format!(
                "{} {} {}",
                self.pick(vocab::HONORIFICS),
                first.trim(),
                last.trim()
            )
        } else {
            format!("{} {}", first.trim(), last.trim())
        };
        let day = self
            .rng
            .random_range(p.since_day..p.active_until().max(p.since_day + 1));
        let satisfaction = self.p(0.6).then(|| {
            let base = if p.churn_day.is_some() { 2 } else { 4 };
            (base + self.rng.random_range(-1..=1)).clamp(1, 5)
        });
        // The helpdesk knows the requester by the channel they came through: the address of an
        // email or a chat's pre-chat form, the number a call came from; at the store desk, what
        // the customer gives.
        let channel = self.pick(&["email", "phone", "chat", "store"]);
        let (email_p, phone_p) = match channel {
            "email" | "chat" => (1.0, 0.3),
            "phone" => (0.4, 1.0),
            _ => (0.5, 0.6),
        };
        let email = self.p(email_p).then(|| self.email_variant(p, true));
        let phone = self
            .p(phone_p)
            .then(|| self.phone_variant(&p.mobile.clone()));
        let card_p = if channel == "store" { 0.6 } else { 0.1 };
        let loyalty_number = card
            .filter(|_| self.p(card_p))
            .map(|c| self.loyalty_variant(c));
        TicketRow {
            ticket_id: record_id("T", self.next_seq(), 0x66),
            requester_name: (!self.p(0.1)).then_some(name),
            email,
            phone,
            loyalty_number,
            channel,
            subject: self.pick(vocab::TICKET_SUBJECTS),
            status: self.pick(&["open", "closed", "closed", "closed", "pending"]),
            satisfaction,
            created_at: iso(micros(day, self.rng.random_range(0..86_400))),
        }
    }
}

/// The mailbox an address delivers to: case-folded, and for gmail without dots and plus tags.
fn mailbox_key(email: &str) -> String {
    let email = email.trim().to_lowercase();
    let Some((local, domain)) = email.split_once('@') else {
        return email;
    };
    let local = local.split('+').next().unwrap_or(local);
    if domain == "gmail.com" || domain == "googlemail.com" {
        format!("{}@gmail.com", local.replace('.', ""))
    } else {
        format!("{local}@{domain}")
    }
}

/// Lower-case ASCII letters only: what a name becomes in an email address.
fn ascii_token(s: &str) -> String {
    deunicode::deunicode(s)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scramble_is_a_bijection_on_small_ranges() {
        let ids: HashSet<u64> = (0..100_000).map(|i| scramble(i, 0x11)).collect();
        assert_eq!(ids.len(), 100_000);
    }

    #[test]
    fn same_seed_same_people() {
        let a = Generator::new(7).chunk(500).unwrap();
        let b = Generator::new(7).chunk(500).unwrap();
        let emails = |c: &Chunk| c.crm.iter().map(|r| r.email.clone()).collect::<Vec<_>>();
        assert_eq!(emails(&a), emails(&b));
        assert_eq!(a.orders.len(), b.orders.len());
        let c = Generator::new(8).chunk(500).unwrap();
        assert_ne!(emails(&a), emails(&c));
    }

    #[test]
    fn one_name_many_times_still_gets_unique_mailboxes() {
        let mut generator = Generator::new(7);
        let birth = NaiveDate::from_ymd_opt(1980, 1, 1).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..20_000 {
            let email = generator.email("John", "Smith", birth, Country::Us);
            assert!(seen.insert(mailbox_key(&email)), "{email} given twice");
        }
    }

    #[test]
    fn mailboxes_are_unique_across_people() {
        let chunk = Generator::new(1).chunk(20_000).unwrap();
        let keys: HashSet<String> = chunk
            .truth_people
            .iter()
            .map(|p| mailbox_key(&p.email))
            .collect();
        assert_eq!(keys.len(), chunk.truth_people.len());
    }

    #[test]
    fn household_members_have_their_own_first_names_but_for_rare_juniors() {
        let chunk = Generator::new(5).chunk(20_000).unwrap();
        let mut by_household: std::collections::HashMap<&str, Vec<&TruthPersonRow>> =
            std::collections::HashMap::new();
        for p in &chunk.truth_people {
            by_household.entry(&p.household_id).or_default().push(p);
        }
        let (mut pairs, mut namesakes) = (0, 0);
        for members in by_household.values() {
            for (i, a) in members.iter().enumerate() {
                for b in &members[i + 1..] {
                    pairs += 1;
                    if a.first_name == b.first_name {
                        namesakes += 1;
                        assert_eq!(a.last_name, b.last_name, "a junior has the family name");
                        let gap = (a.birth_date - b.birth_date).abs();
                        assert!(gap >= 18 * 365, "namesakes a generation apart: {gap} days");
                    }
                }
            }
        }
        let share = namesakes as f64 / pairs as f64;
        assert!(
            share > 0.005 && share < 0.04,
            "{namesakes} of {pairs} pairs"
        );
    }

    #[test]
    fn chunks_hold_exactly_the_people_asked_for() {
        let mut g = Generator::new(3);
        let a = g.chunk(1_001).unwrap();
        let b = g.chunk(999).unwrap();
        assert_eq!(a.truth_people.len(), 1_001);
        assert_eq!(b.truth_people.len(), 999);
        assert_eq!(b.truth_people[0].true_person_id, "P000001001");
    }

    #[test]
    fn systems_share_the_identifiers_real_ones_do() {
        let chunk = Generator::new(7).chunk(5_000).unwrap();
        let truth: std::collections::HashMap<(&str, &str), &String> = chunk
            .truth_records
            .iter()
            .map(|t| ((t.source, t.record_id.as_str()), &t.true_person_id))
            .collect();
        let person = |source: &str, id: &str| -> String {
            truth
                .get(&(source, id))
                .map(|p| (*p).clone())
                .expect("every record has a person")
        };
        let digits = |card: &str| -> String { card.chars().filter(char::is_ascii_digit).collect() };
        // Each card printed at a till belongs to one person.
        let cards: std::collections::HashMap<String, String> = chunk
            .pos_customers
            .iter()
            .map(|r| {
                (
                    digits(&r.loyalty_number),
                    person("pos_customers", &r.pos_customer_id),
                )
            })
            .collect();
        // The helpdesk knows a requester by the channel they came through.
        for t in &chunk.tickets {
            match t.channel {
                "email" | "chat" => assert!(t.email.is_some(), "{t:?}"),
                "phone" => assert!(t.phone.is_some(), "{t:?}"),
                _ => {}
            }
        }
        // A card given to the CRM, the web account or the help desk is the person's own card.
        let mut given = 0;
        let crm = chunk.crm.iter().filter_map(|r| {
            Some((
                r.loyalty_number.as_deref()?,
                person("crm_contacts", &r.contact_id),
            ))
        });
        let tickets = chunk.tickets.iter().filter_map(|r| {
            Some((
                r.loyalty_number.as_deref()?,
                person("support_tickets", &r.ticket_id),
            ))
        });
        let web = chunk.web_events.iter().filter_map(|e| {
            Some((
                e.loyalty_number.as_deref()?,
                person("web_users", e.user_id.as_deref()?),
            ))
        });
        for (card, owner) in crm.chain(tickets).chain(web) {
            assert_eq!(cards.get(&digits(card)), Some(&owner), "{card}");
            given += 1;
        }
        assert!(given > 1_000, "{given} cards given outside the tills");
        // Signups carry the account's profile: a name mostly, a phone or postcode sometimes.
        let signups: Vec<&WebEventRow> = chunk
            .web_events
            .iter()
            .filter(|e| e.event_type == "signup")
            .collect();
        let share = |f: fn(&WebEventRow) -> bool| {
            signups.iter().filter(|e| f(e)).count() as f64 / signups.len() as f64
        };
        assert!(share(|e| e.first_name.is_some()) > 0.8);
        assert!((0.2..0.5).contains(&share(|e| e.phone.is_some())));
        assert!((0.3..0.5).contains(&share(|e| e.postal_code.is_some())));
        assert!(
            chunk
                .web_events
                .iter()
                .filter(|e| e.event_type != "signup")
                .all(|e| e.first_name.is_none() && e.loyalty_number.is_none())
        );
    }

    #[test]
    fn gmail_variants_share_a_mailbox() {
        assert_eq!(
            mailbox_key(" John.Smith+shop@GoogleMail.com"),
            "johnsmith@gmail.com"
        );
        assert_eq!(mailbox_key("j.smith@yahoo.com"), "j.smith@yahoo.com");
    }

    #[test]
    fn noise_is_present() {
        let chunk = Generator::new(5).chunk(5_000).unwrap();
        let phones: Vec<&String> = chunk.crm.iter().filter_map(|r| r.phone.as_ref()).collect();
        assert!(phones.iter().any(|p| p.starts_with('(')));
        assert!(phones.iter().any(|p| p.starts_with("+44")));
        let emails: Vec<&String> = chunk.crm.iter().filter_map(|r| r.email.as_ref()).collect();
        assert!(emails.iter().any(|e| e.contains('+')));
        assert!(emails.iter().any(|e| e.contains("family")));
        assert!(chunk.crm.iter().any(|r| r.email.is_none()));
        // duplicates inside the CRM
        let crm_people: HashSet<&String> = chunk
            .truth_records
            .iter()
            .filter(|t| t.source == "crm_contacts")
            .map(|t| &t.true_person_id)
            .collect();
        assert!(crm_people.len() < chunk.crm.len());
    }
}
