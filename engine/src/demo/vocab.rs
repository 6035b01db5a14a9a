//! Word lists for the demo generator: names (with the nicknames people really use), streets,
//! cities and postal-code shapes for the four demo countries.

/// A first name, its gender (`F`/`M`) and diminutives people use in its place.
pub type FirstName = (&'static str, char, &'static [&'static str]);

pub const US_FIRST: &[FirstName] = &[
    ("William", 'M', &["Bill", "Will", "Billy"]),
    ("Robert", 'M', &["Bob", "Rob", "Bobby"]),
    ("James", 'M', &["Jim", "Jimmy"]),
    ("John", 'M', &["Jack", "Johnny"]),
    ("Michael", 'M', &["Mike", "Mick"]),
    ("Richard", 'M', &["Rick", "Dick", "Rich"]),
    ("Thomas", 'M', &["Tom", "Tommy"]),
    ("Charles", 'M', &["Charlie", "Chuck"]),
    ("Joseph", 'M', &["Joe", "Joey"]),
    ("Christopher", 'M', &["Chris"]),
    ("Daniel", 'M', &["Dan", "Danny"]),
    ("Matthew", 'M', &["Matt"]),
    ("Anthony", 'M', &["Tony"]),
    ("Steven", 'M', &["Steve"]),
    ("Andrew", 'M', &["Andy", "Drew"]),
    ("Joshua", 'M', &["Josh"]),
    ("Kenneth", 'M', &["Ken", "Kenny"]),
    ("Edward", 'M', &["Ed", "Eddie", "Ted"]),
    ("Benjamin", 'M', &["Ben"]),
    ("Samuel", 'M', &["Sam"]),
    ("Nicholas", 'M', &["Nick"]),
    ("Alexander", 'M', &["Alex"]),
    ("Jonathan", 'M', &["Jon"]),
    ("Timothy", 'M', &["Tim"]),
    ("Gregory", 'M', &["Greg"]),
    ("Patrick", 'M', &["Pat"]),
    ("Raymond", 'M', &["Ray"]),
    ("Lawrence", 'M', &["Larry"]),
    ("Kevin", 'M', &[]),
    ("Brian", 'M', &[]),
    ("Jason", 'M', &[]),
    ("Ryan", 'M', &[]),
    ("Jose", 'M', &["Pepe"]),
    ("Carlos", 'M', &[]),
    ("Wei", 'M', &[]),
    ("Mohammed", 'M', &["Mo"]),
    ("Elizabeth", 'F', &["Liz", "Beth", "Betty", "Eliza"]),
    ("Margaret", 'F', &["Maggie", "Peggy", "Meg"]),
    ("Jennifer", 'F', &["Jen", "Jenny"]),
    ("Patricia", 'F', &["Pat", "Patty", "Tricia"]),
    ("Katherine", 'F', &["Kate", "Katie", "Kathy"]),
    ("Susan", 'F', &["Sue", "Susie"]),
    ("Deborah", 'F', &["Debbie", "Deb"]),
    ("Rebecca", 'F', &["Becky", "Becca"]),
    ("Jessica", 'F', &["Jess"]),
    ("Samantha", 'F', &["Sam", "Sammy"]),
    ("Victoria", 'F', &["Vicky", "Tori"]),
    ("Christina", 'F', &["Chris", "Tina"]),
    ("Abigail", 'F', &["Abby"]),
    ("Kimberly", 'F', &["Kim"]),
    ("Stephanie", 'F', &["Steph"]),
    ("Alexandra", 'F', &["Alex", "Sandra"]),
    ("Mary", 'F', &["Molly", "Polly"]),
    ("Linda", 'F', &[]),
    ("Sarah", 'F', &[]),
    ("Emily", 'F', &["Em"]),
    ("Ashley", 'F', &[]),
    ("Amanda", 'F', &["Mandy"]),
    ("Nicole", 'F', &["Nikki"]),
    ("Maria", 'F', &[]),
    ("Mei", 'F', &[]),
    ("Aisha", 'F', &[]),
];

pub const GB_FIRST: &[FirstName] = &[
    ("Oliver", 'M', &["Olly"]),
    ("George", 'M', &[]),
    ("Harry", 'M', &[]),
    ("Jack", 'M', &[]),
    ("Charles", 'M', &["Charlie"]),
    ("Thomas", 'M', &["Tom"]),
    ("William", 'M', &["Will", "Bill"]),
    ("James", 'M', &["Jim", "Jamie"]),
    ("Edward", 'M', &["Ed", "Ted", "Eddie"]),
    ("Alfred", 'M', &["Alfie", "Alf"]),
    ("Archibald", 'M', &["Archie"]),
    ("Frederick", 'M', &["Fred", "Freddie"]),
    ("Henry", 'M', &["Harry", "Hal"]),
    ("Robert", 'M', &["Rob", "Bob"]),
    ("Daniel", 'M', &["Dan"]),
    ("Samuel", 'M', &["Sam"]),
    ("Rajesh", 'M', &["Raj"]),
    ("Siobhan", 'F', &[]),
    ("Olivia", 'F', &["Liv"]),
    ("Amelia", 'F', &["Millie"]),
    ("Isabella", 'F', &["Bella", "Izzy"]),
    ("Charlotte", 'F', &["Lottie"]),
    ("Elizabeth", 'F', &["Lizzie", "Beth"]),
    ("Margaret", 'F', &["Maggie", "Meg"]),
    ("Eleanor", 'F', &["Ellie", "Nell"]),
    ("Victoria", 'F', &["Vicky"]),
    ("Sophie", 'F', &[]),
    ("Emily", 'F', &[]),
    ("Jessica", 'F', &["Jess"]),
    ("Priya", 'F', &[]),
];

pub const FR_FIRST: &[FirstName] = &[
    ("Jean", 'M', &[]),
    ("Pierre", 'M', &[]),
    ("François", 'M', &["Francis"]),
    ("Frédéric", 'M', &["Fred"]),
    ("Jérôme", 'M', &[]),
    ("Stéphane", 'M', &[]),
    ("Nicolas", 'M', &["Nico"]),
    ("Guillaume", 'M', &[]),
    ("Benoît", 'M', &[]),
    ("Mathieu", 'M', &["Matt"]),
    ("Jean-Pierre", 'M', &["JP"]),
    ("Jean-Luc", 'M', &[]),
    ("Hélène", 'F', &[]),
    ("Élodie", 'F', &[]),
    ("Céline", 'F', &[]),
    ("Amélie", 'F', &[]),
    ("Chloé", 'F', &[]),
    ("Marie", 'F', &[]),
    ("Anne-Sophie", 'F', &[]),
    ("Isabelle", 'F', &["Isa"]),
    ("Catherine", 'F', &["Cathy"]),
    ("Nathalie", 'F', &[]),
    ("Géraldine", 'F', &[]),
    ("Léa", 'F', &[]),
];

pub const DE_FIRST: &[FirstName] = &[
    ("Jürgen", 'M', &[]),
    ("Günter", 'M', &[]),
    ("Klaus", 'M', &[]),
    ("Stefan", 'M', &[]),
    ("Matthias", 'M', &["Matze"]),
    ("Wolfgang", 'M', &["Wolf"]),
    ("Johannes", 'M', &["Hannes", "Jo"]),
    ("Maximilian", 'M', &["Max"]),
    ("Alexander", 'M', &["Alex"]),
    ("Andreas", 'M', &["Andi"]),
    ("Sebastian", 'M', &["Basti"]),
    ("Jörg", 'M', &[]),
    ("Ursula", 'F', &["Uschi"]),
    ("Katharina", 'F', &["Kathi", "Katja"]),
    ("Gisela", 'F', &["Gisi"]),
    ("Sabine", 'F', &[]),
    ("Susanne", 'F', &["Susi"]),
    ("Christiane", 'F', &["Christa"]),
    ("Bärbel", 'F', &[]),
    ("Anja", 'F', &[]),
    ("Franziska", 'F', &["Franzi"]),
    ("Elisabeth", 'F', &["Lisa", "Elli"]),
];

pub const US_LAST: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes",
    "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster",
    "Jimenez", "O'Brien", "McDonald", "O'Connor", "Van Buren", "De La Cruz", "Chen", "Wang",
    "Zhang", "Okafor", "Kowalski", "Schwartz", "Fitzgerald", "MacArthur", "St. James",
];

pub const GB_LAST: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
    "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood",
    "Jackson", "Clarke", "Patel", "Khan", "Lewis", "James", "Phillips", "Mason", "Mitchell",
    "Rose", "Davis", "Rodgers", "Harrison", "Hughes", "Edwards", "Turner", "Hill", "Moore",
    "Cooper", "Ward", "Morris", "King", "Watson", "Harris", "Baker", "Young", "Allen",
    "Bennett", "Griffiths", "Kelly", "Murphy", "Marshall", "O'Neill", "McKenzie", "Ffrench",
    "Smythe", "Ashworth", "Featherstonehaugh", "Singh", "Ahmed", "Campbell", "Stewart",
];

pub const FR_LAST: &[&str] = &[
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau",
    "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel",
    "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent",
    "Müller", "Lefebvre", "Faure", "André", "Mercier", "Blanc", "Guérin", "Boyer", "Garnier",
    "Chevalier", "François", "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clément",
    "Morin", "Nicolas", "Henry", "Roussel", "Mathieu", "Gautier", "Masson", "Marchand",
    "Duval", "Denis", "Dumont", "Marie", "Lemaire", "Noël", "Meyer", "Dufour", "Meunier",
    "Brun", "Blanchard", "Giraud", "Joly", "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier",
    "Arnaud", "Martínez", "Gérard", "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin",
    "Vidal", "Caron", "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas",
    "Lacroix", "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc",
    "Payet", "Rolland", "Leclercq", "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy",
    "Guillot", "Hubert", "Berger", "Carpentier", "Sánchez", "Dupuis", "Moulin", "Louis",
    "Deschamps", "Huet", "Vasseur", "Perez", "Boucher", "Fleury", "Royer", "Klein", "Jacquet",
    "Adam", "Paris", "Poirier", "Marty", "Aubry", "Guyot", "Carré", "Charles", "Renault",
    "Charpentier", "Ménard", "Maillard", "Baron", "Bertin", "Bailly", "Hervé", "Schneider",
    "Fernandez", "Le Gall", "Collet", "Léger", "Bouvier", "Julien", "Prévost", "Millet",
    "Perrot", "Daniel", "Le Roux", "Cousin", "Germain", "Breton", "Besson", "Langlois",
    "Rémy", "Le Goff", "Pelletier", "Lévêque", "Perrier", "Leblanc", "Barré", "Lebrun",
    "Marchal", "Weber", "Mallet", "Hamon", "Boulanger", "Jacob", "Monnier", "Michaud",
    "Rodriguez", "Guichard", "Gillet", "Étienne", "Grondin", "Poulain", "Tessier", "Chevallier",
    "Collin", "Chauvin", "Da Silva", "Bouchet", "Gay", "Lemaître", "Bénard", "Maréchal",
    "Humbert", "Reynaud", "Antoine", "Hoarau", "Perret", "Barthélemy", "Cordier", "Pichon",
    "Lejeune", "Gilbert", "Lamy", "Delaunay", "Pasquier", "Carlier", "Laporte",
];

pub const DE_LAST: &[&str] = &[
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder",
    "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange",
    "Schmitt", "Werner", "Schmitz", "Krause", "Meier", "Lehmann", "Schmid", "Schulze", "Maier",
    "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber", "Kaiser", "Fuchs", "Peters",
    "Lang", "Scholz", "Möller", "Weiß", "Jung", "Hahn", "Schubert", "Vogel", "Friedrich",
    "Keller", "Günther", "Frank", "Berger", "Winkler", "Roth", "Beck", "Lorenz", "Baumann",
    "Franke", "Albrecht", "Schuster", "Simon", "Ludwig", "Böhm", "Winter", "Kraus", "Martin",
    "Schumacher", "Krämer", "Vogt", "Stein", "Jäger", "Otto", "Sommer", "Groß", "Seidel",
    "Heinrich", "Brandt", "Haas", "Schreiber", "Graf", "Schulte", "Dietrich", "Ziegler",
    "Kuhn", "Kühn", "Pohl", "Engel", "Horn", "Busch", "Bergmann", "Thomas", "Voigt", "Sauer",
    "Arnold", "Wolff", "Pfeiffer", "von Trapp", "Yılmaz", "Kowalczyk", "Nguyen",
];

/// (street name, street type) per country; types are written out in full and abbreviated by
/// the noise step.
pub const US_STREETS: &[&str] = &[
    "Main", "Oak", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Pine",
    "Sunset", "Lincoln", "Jackson", "Franklin", "Highland", "Madison", "Church", "Willow",
    "Ridge", "Meadow", "Forest", "River", "Spring", "Center", "Chestnut", "Walnut", "Lakeview",
];
pub const US_STREET_TYPES: &[(&str, &str)] = &[
    ("Street", "St"), ("Avenue", "Ave"), ("Road", "Rd"), ("Boulevard", "Blvd"),
    ("Drive", "Dr"), ("Lane", "Ln"), ("Court", "Ct"), ("Place", "Pl"),
];
/// (city, state, first three ZIP digits)
pub const US_CITIES: &[(&str, &str, &str)] = &[
    ("New York", "NY", "100"), ("Brooklyn", "NY", "112"), ("Los Angeles", "CA", "900"),
    ("San Francisco", "CA", "941"), ("San Diego", "CA", "921"), ("Chicago", "IL", "606"),
    ("Houston", "TX", "770"), ("Austin", "TX", "787"), ("Dallas", "TX", "752"),
    ("Phoenix", "AZ", "850"), ("Philadelphia", "PA", "191"), ("Seattle", "WA", "981"),
    ("Denver", "CO", "802"), ("Boston", "MA", "021"), ("Atlanta", "GA", "303"),
    ("Miami", "FL", "331"), ("Portland", "OR", "972"), ("Minneapolis", "MN", "554"),
    ("Nashville", "TN", "372"), ("Las Vegas", "NV", "891"),
];
/// US area codes used for demo phone numbers (all assigned geographic codes).
pub const US_AREA_CODES: &[&str] = &[
    "212", "718", "213", "310", "415", "619", "312", "713", "512", "214", "602", "215", "206",
    "303", "617", "404", "305", "503", "612", "615", "702", "919", "801", "314",
];

pub const GB_STREETS: &[&str] = &[
    "High", "Station", "Church", "Victoria", "Park", "Green", "Manor", "Mill", "Queen's",
    "King's", "Windsor", "Albert", "Grange", "Kingsway", "Chapel", "York", "Springfield",
];
pub const GB_STREET_TYPES: &[(&str, &str)] = &[
    ("Street", "St"), ("Road", "Rd"), ("Lane", "Ln"), ("Avenue", "Ave"), ("Close", "Cl"),
    ("Crescent", "Cres"), ("Gardens", "Gdns"), ("Terrace", "Ter"),
];
/// (city, county, outward-code area letters)
pub const GB_CITIES: &[(&str, &str, &str)] = &[
    ("London", "Greater London", "SW"), ("London", "Greater London", "N"),
    ("London", "Greater London", "E"), ("Manchester", "Greater Manchester", "M"),
    ("Birmingham", "West Midlands", "B"), ("Leeds", "West Yorkshire", "LS"),
    ("Glasgow", "Lanarkshire", "G"), ("Bristol", "Bristol", "BS"),
    ("Liverpool", "Merseyside", "L"), ("Edinburgh", "Midlothian", "EH"),
    ("Cardiff", "South Glamorgan", "CF"), ("Oxford", "Oxfordshire", "OX"),
];

pub const FR_STREETS: &[&str] = &[
    "de la République", "Victor Hugo", "Jean Jaurès", "de la Paix", "du Général de Gaulle",
    "Pasteur", "des Lilas", "de l'Église", "du Moulin", "de la Gare", "Voltaire", "Gambetta",
    "Émile Zola", "des Écoles", "Saint-Michel",
];
pub const FR_STREET_TYPES: &[(&str, &str)] = &[
    ("Rue", "R."), ("Avenue", "Av."), ("Boulevard", "Bd"), ("Place", "Pl."), ("Allée", "All."),
    ("Impasse", "Imp."), ("Chemin", "Ch."),
];
/// (city, region, department code)
pub const FR_CITIES: &[(&str, &str, &str)] = &[
    ("Paris", "Île-de-France", "75"), ("Marseille", "Provence-Alpes-Côte d'Azur", "13"),
    ("Lyon", "Auvergne-Rhône-Alpes", "69"), ("Toulouse", "Occitanie", "31"),
    ("Nice", "Provence-Alpes-Côte d'Azur", "06"), ("Nantes", "Pays de la Loire", "44"),
    ("Strasbourg", "Grand Est", "67"), ("Montpellier", "Occitanie", "34"),
    ("Bordeaux", "Nouvelle-Aquitaine", "33"), ("Lille", "Hauts-de-France", "59"),
    ("Saint-Étienne", "Auvergne-Rhône-Alpes", "42"),
];

pub const DE_STREETS: &[&str] = &[
    "Haupt", "Schul", "Garten", "Bahnhof", "Dorf", "Berg", "Linden", "Kirch", "Wald", "Ring",
    "Goethe", "Schiller", "Mozart", "Birken", "Rosen", "Friedrich-Ebert-",
];
pub const DE_STREET_TYPES: &[(&str, &str)] = &[
    ("straße", "str."), ("weg", "wg."), ("allee", "al."), ("platz", "pl."),
];
/// (city, state, postal-code prefix)
pub const DE_CITIES: &[(&str, &str, &str)] = &[
    ("Berlin", "Berlin", "10"), ("Hamburg", "Hamburg", "20"), ("München", "Bayern", "80"),
    ("Köln", "Nordrhein-Westfalen", "50"), ("Frankfurt am Main", "Hessen", "60"),
    ("Stuttgart", "Baden-Württemberg", "70"), ("Düsseldorf", "Nordrhein-Westfalen", "40"),
    ("Leipzig", "Sachsen", "04"), ("Dortmund", "Nordrhein-Westfalen", "44"),
    ("Nürnberg", "Bayern", "90"), ("Dresden", "Sachsen", "01"),
];

/// Personal email domains by country, most common first (weights in `email_domain`).
pub const US_DOMAINS: &[&str] = &["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com", "comcast.net"];
pub const GB_DOMAINS: &[&str] = &["gmail.com", "hotmail.co.uk", "yahoo.co.uk", "outlook.com", "btinternet.com", "icloud.com", "sky.com"];
pub const FR_DOMAINS: &[&str] = &["gmail.com", "orange.fr", "free.fr", "hotmail.fr", "laposte.net", "yahoo.fr", "sfr.fr"];
pub const DE_DOMAINS: &[&str] = &["gmail.com", "gmx.de", "web.de", "t-online.de", "outlook.de", "yahoo.de", "posteo.de"];

/// How country names appear in exports: ISO code plus the spellings systems use.
pub const COUNTRY_SPELLINGS: &[(&str, &[&str])] = &[
    ("US", &["United States", "USA", "US", "U.S.A.", "united states of america"]),
    ("GB", &["United Kingdom", "UK", "GB", "Great Britain", "England"]),
    ("FR", &["France", "FR", "FRA", "france", "République française"]),
    ("DE", &["Germany", "DE", "Deutschland", "DEU", "germany"]),
];

pub const STORES: &[(&str, &str)] = &[
    ("S001", "US"), ("S002", "US"), ("S003", "US"), ("S004", "US"), ("S005", "US"),
    ("S101", "GB"), ("S102", "GB"), ("S103", "GB"), ("S201", "FR"), ("S202", "FR"),
    ("S301", "DE"), ("S302", "DE"),
];

/// (category, typical basket in the local currency unit)
pub const CATEGORIES: &[(&str, f64)] = &[
    ("apparel", 60.0), ("footwear", 90.0), ("beauty", 35.0), ("home", 75.0),
    ("electronics", 180.0), ("grocery", 25.0), ("toys", 40.0), ("sports", 70.0),
];

pub const PAGES: &[&str] = &[
    "/", "/search", "/category/apparel", "/category/footwear", "/category/beauty",
    "/category/home", "/category/electronics", "/cart", "/checkout", "/account", "/help",
    "/stores", "/offers",
];

pub const TICKET_SUBJECTS: &[&str] = &[
    "Where is my order?", "Refund request", "Item arrived damaged", "Change delivery address",
    "Loyalty points missing", "Cannot log in", "Wrong size", "Cancel my order",
    "Complaint about store staff", "Question about a product", "Unsubscribe me",
];

pub const HONORIFICS: &[&str] = &["Mr", "Mrs", "Ms", "Dr", "Mr.", "Mrs.", "Ms.", "Dr."];
