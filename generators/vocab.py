"""Word lists for seed data: names, places, streets and companies that read like real records.

Kept here, not drawn from a faker library, so that the same spec gives the same bytes on every
machine and every version.
"""


def _words(text: str, separator: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(separator))


FIRST_NAMES = _words(
    "Aaliyah Aaron Abigail Adam Adrian Aisha Alejandro Alex Alice Amara Amelia Ana Andre Andrew "
    "Anika Anna Arjun Ava Beatriz Benjamin Bianca Caleb Camila Carlos Caroline Charlotte Chen "
    "Chloe Daniel David Diana Diego Dmitri Elena Elijah Elif Ella Emily Emma Ethan Eva Fatima "
    "Felix Fiona Gabriel Grace Hana Hannah Harper Hassan Henry Hiro Ibrahim Imani Isabel Isaac "
    "Ivan Jack Jada James Javier Jin Jonah Jose Julia Kai Kavya Kenji Kofi Laila Laura Leah Leila "
    "Leo Liam Lily Lucas Lucia Luis Maya Mateo Mei Mia Michael Mohammed Nadia Naomi Nathan Nia "
    "Noah Nora Olivia Omar Oscar Owen Priya Rafael Rania Rosa Ryan Samuel Sara Sebastian Sofia "
    "Sophie Tariq Theo Thomas Valentina Victor Wei William Yara Yuki Zara Zoe"
)

LAST_NAMES = _words(
    "Abbott Adams Ahmed Alvarez Anderson Bailey Baker Banerjee Bennett Brooks Brown Campbell "
    "Carter Castillo Chen Clark Collins Cooper Cruz Davis Diaz Edwards Evans Fischer Flores "
    "Foster Garcia Gomez Gonzalez Green Gupta Hall Harris Hayes Hernandez Hill Hughes Ito "
    "Jackson James Jensen Johnson Jones Kaur Kelly Khan Kim Kowalski Lee Lewis Lopez Martin "
    "Martinez Mendoza Miller Mitchell Moore Morales Morgan Murphy Nakamura Nelson Nguyen Novak "
    "Okafor Olsen Ortiz Park Patel Perez Peterson Phillips Price Ramirez Reed Reyes Rivera "
    "Roberts Robinson Rodriguez Rossi Russell Sanchez Santos Schmidt Scott Shah Silva Singh "
    "Smith Sullivan Suzuki Taylor Thomas Thompson Torres Turner Walker Wang Ward Watson White "
    "Williams Wilson Wright Yamamoto Young Zhang"
)

CITIES = _words(
    "Atlanta|Austin|Baltimore|Boston|Charlotte|Chicago|Cleveland|Columbus|Dallas|Denver|Detroit|"
    "El Paso|Fort Worth|Houston|Indianapolis|Jacksonville|Kansas City|Las Vegas|Los Angeles|"
    "Louisville|Memphis|Miami|Milwaukee|Minneapolis|Nashville|New Orleans|New York|Oakland|"
    "Oklahoma City|Omaha|Philadelphia|Phoenix|Pittsburgh|Portland|Raleigh|Sacramento|"
    "Salt Lake City|San Antonio|San Diego|San Francisco|San Jose|Seattle|St. Louis|Tampa|"
    "Tucson|Washington",
    "|",
)

STREET_NAMES = _words(
    "Maple|Oak|Pine|Cedar|Elm|Washington|Lake|Hill|Park|Main|Church|Highland|Sunset|Lincoln|"
    "Jefferson|Madison|Franklin|River|Spring|Ridge|Meadow|Forest|Willow|Chestnut|Walnut|Harbor|"
    "Mill|Union|Grant|Bay",
    "|",
)
STREET_KINDS = ("St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Way", "Ct")

COMPANY_WORDS = _words(
    "Acme|Apex|Atlas|Beacon|Blue Ridge|Bright|Cascade|Cedar|Copper|Crescent|Delta|Evergreen|"
    "Falcon|Granite|Harbor|Horizon|Iron|Keystone|Lakeside|Liberty|Maple|Meridian|Northwind|"
    "Pacific|Pinnacle|Redwood|Riverside|Silver|Sterling|Summit|Trident|Vertex|Willow",
    "|",
)
COMPANY_KINDS = (
    "Labs", "Partners", "Group", "Logistics", "Systems", "Studios", "Holdings", "Foods",
    "Consulting", "Analytics", "Media", "Supply Co.", "Health", "Capital", "Works",
)  # fmt: skip
