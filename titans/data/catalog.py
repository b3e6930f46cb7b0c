"""The business vocabulary the generator draws from, shaped after a real 127-row export.

Why a table and not a fitted model: 100 real expenses cannot support a fitted joint
distribution, but they do show which categories exist, which merchants and descriptions
go with each, and the typical size of each kind of spend. Weights are the real category
frequencies; medians and spreads are the real per-category amounts, widened a little so
that models see realistic overlap.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CategoryProfile:
    """How one expense category looks: frequency, amount distribution, merchants, texts."""

    name: str
    weight: float
    median_amount: float
    sigma: float
    merchants: tuple[str, ...]
    descriptions: tuple[str, ...]


EXPENSE_CATEGORIES: tuple[CategoryProfile, ...] = (
    CategoryProfile(
        "software", 15, 30.0, 0.8,
        ("Microsoft", "Adobe", "Dropbox", "JetBrains", "HostGator", "GoDaddy", "DigiCert", "Trello",
         "Zoom", "Norton", "Notion", "Backblaze", "Slack", "Atlassian", "GitHub"),
        ("Software License", "Cloud Storage Service", "Web Hosting Service", "Domain Registration",
         "SSL Certificate", "Project Management Tool", "Video Conferencing Software",
         "Antivirus Software", "Backup Service Subscription", "Software License Renewal"),
    ),
    CategoryProfile(
        "fuel", 9, 85.0, 0.3,
        ("Shell", "BP", "Chevron", "Mobil", "Texaco", "Exxon", "Valero"),
        ("Fuel for Vehicle", "Fuel for Travel", "Fuel Station", "Vehicle Fuel", "Fuel for Client Visit",
         "Fuel Stop", "Fuel for Business Travel"),
    ),
    CategoryProfile(
        "meals_entertainment", 9, 55.0, 0.6,
        ("Restaurant ABC", "Starbucks", "Panera Bread", "Cheesecake Factory", "Applebees", "Ruth's Chris",
         "Coffee Bean", "TGI Fridays", "Red Lobster", "Chipotle"),
        ("Business Lunch", "Coffee Shop Meeting", "Client Meeting Lunch", "Lunch Meeting with Client",
         "Client Dinner", "Client Meeting Coffee", "Lunch with Team", "Business Lunch Meeting"),
    ),
    CategoryProfile(
        "telephone", 6, 80.0, 0.35,
        ("Comcast", "Verizon", "RingCentral", "Spectrum", "Vonage", "AT&T"),
        ("Internet Service", "Mobile Phone Bill", "Business Phone Service", "Internet Upgrade",
         "Office Phone System"),
    ),
    CategoryProfile(
        "travel", 6, 45.0, 1.0,
        ("City Parking", "United Airlines", "SpotHero", "ParkWhiz", "Marriott", "Conference Center", "Delta"),
        ("Parking Fees", "Business Travel", "Parking Downtown", "Parking for Client Meeting",
         "Business Travel Hotel", "Parking for Conference"),
    ),
    CategoryProfile(
        "office_supplies", 6, 80.0, 0.4,
        ("Staples", "Office Depot", "Costco", "Best Buy", "Walmart", "OfficeMax"),
        ("Printer Paper & Supplies", "Office Supplies", "Office Supplies Restock", "Printer Cartridges",
         "Month-end Office Supplies", "Office Supply Restocking"),
    ),
    CategoryProfile(
        "supplies", 5, 70.0, 0.6,
        ("Party City", "Keurig", "VistaPrint", "FedEx Office", "CVS Pharmacy"),
        ("Office Decorations", "Office Coffee Machine", "Marketing Materials", "Business Cards Printing",
         "Office Cleaning Supplies"),
    ),
    CategoryProfile(
        "computer_equipment", 5, 150.0, 0.9,
        ("Minisforum", "Logitech", "Dell", "Seagate", "Amazon", "Lenovo"),
        ("Mini PC", "Computer Mouse & Keyboard", "Computer Monitor", "Backup Drive", "Wireless Mouse",
         "Laptop Dock"),
    ),
    CategoryProfile(
        "training", 5, 120.0, 0.8,
        ("Udemy", "Coursera", "Amazon", "TechConf 2024", "LinkedIn Learning"),
        ("Training Course", "Professional Development", "Professional Development Book",
         "Conference Registration", "Professional Training Course"),
    ),
    CategoryProfile(
        "entertainment", 4, 105.0, 0.3,
        ("Theater District", "TechMeetup", "Capital Grille", "Morton's"),
        ("Client Entertainment", "Networking Event", "Business Networking Lunch",
         "Client Entertainment Dinner"),
    ),
    CategoryProfile(
        "other", 4, 120.0, 0.6,
        ("State Farm", "Chase Bank", "Progressive", "Farmers Insurance"),
        ("Business Insurance", "Business Banking Fees", "Professional Liability Insurance",
         "Equipment Insurance"),
    ),
    CategoryProfile(
        "maintenance", 3, 150.0, 0.25,
        ("TechFix Pro", "CleanPro", "TechCal Services"),
        ("Equipment Maintenance", "Office Cleaning Service", "Equipment Calibration"),
    ),
    CategoryProfile(
        "repairs", 3, 130.0, 0.3,
        ("Tech Repair Co", "Furniture Fix", "TechRepair Pro"),
        ("Equipment Repair", "Office Chair Repair", "Office Equipment Repair"),
    ),
    CategoryProfile(
        "professional_fees", 3, 300.0, 0.4,
        ("Johnson Law", "CPA Services", "IEEE"),
        ("Legal Consultation", "Accountant Fees", "Professional Association Dues"),
    ),
    CategoryProfile(
        "vehicle_expenses", 3, 150.0, 0.6,
        ("AutoShop Pro", "Jiffy Lube", "AutoCare Plus"),
        ("Vehicle Maintenance", "Vehicle Oil Change", "Vehicle Maintenance Check"),
    ),
    CategoryProfile(
        "home_office", 3, 70.0, 0.5,
        ("Amazon", "Home Depot", "Target"),
        ("Home Office Supplies", "Home Office Lighting", "Office Desk Organizer"),
    ),
    CategoryProfile(
        "food", 3, 90.0, 0.4,
        ("Whole Foods", "Kroger", "Olive Garden"),
        ("Grocery Store", "Grocery Shopping", "Restaurant Meal"),
    ),
    CategoryProfile(
        "vehicle", 2, 230.0, 0.3,
        ("Geico", "State Farm"),
        ("Vehicle Insurance", "Vehicle Insurance Renewal"),
    ),
    CategoryProfile(
        "hardware", 2, 190.0, 0.4,
        ("Best Buy", "Newegg"),
        ("Hardware Components", "Hardware Testing Tools"),
    ),
    CategoryProfile(
        "furniture", 1, 400.0, 0.4,
        ("IKEA", "Wayfair"),
        ("Home Office Desk", "Office Chair"),
    ),
)

# Recurring monthly charges: (category, merchant, description, amount, day of month).
SUBSCRIPTIONS: tuple[tuple[str, str, str, float, int], ...] = (
    ("rent", "Property Management", "Office Rent", 1200.00, 1),
    ("software", "Microsoft", "Office365 Subscription", 15.99, 5),
    ("software", "Adobe", "Adobe Creative Suite", 52.99, 12),
    ("software", "Slack", "Project Collaboration Tool", 8.75, 20),
    ("telephone", "Verizon", "Mobile Phone Bill", 85.00, 18),
)

INCOME_CLIENTS: tuple[str, ...] = (
    "MainClient", "TechCorp", "StartupXYZ", "TechStart Inc", "RetailCorp", "DataFlow Ltd", "BigCorp Inc",
    "TechSolutions", "DesignStudio", "BlogCorp", "EduTech Solutions", "DataCorp", "AppCorp",
    "Enterprise Ltd", "Manufacturing Co", "SaaS Company", "FinTech Startup", "Legacy Corp",
)
INCOME_DESCRIPTIONS: tuple[str, ...] = (
    "Client Payment - Web Development", "Client Payment - Mobile App", "Consulting Retainer",
    "Website Maintenance Contract", "Data Pipeline Project", "Design Services Invoice",
)

# Payment methods and their real shares among expenses; income arrives by bank transfer.
PAYMENT_METHODS: tuple[tuple[str, float], ...] = (
    ("credit_card", 0.86), ("bank_transfer", 0.08), ("debit_card", 0.04), ("paypal", 0.01), ("other", 0.01),
)

# Merchants a business has never used: the generator's "unfamiliar merchant" fraud draws here.
UNFAMILIAR_MERCHANTS: tuple[str, ...] = (
    "QuickPay Global", "ZX Digital Ltd", "Wire Transfer Svc", "Crypto Exchange 24", "Gift Card Hub",
    "Offshore Electronics", "FastCash Intl", "Luxe Goods Online", "Bet Master", "Unknown Vendor 7781",
)
CARD_TESTING_MERCHANTS: tuple[str, ...] = ("PAYPNT*TEST", "SQ *DONATE", "AUTH CHECK 001", "WEBSTORE*VERIFY")

# Big-box and marketplace merchants that sell in several categories: the merchant alone does
# not give the category away, as in real books (an Amazon order may be a book, a mouse or paper).
MULTI_CATEGORY_MERCHANTS: dict[str, tuple[str, ...]] = {
    "Amazon": ("computer_equipment", "training", "home_office", "office_supplies", "supplies", "hardware"),
    "Costco": ("office_supplies", "food", "supplies"),
    "Walmart": ("office_supplies", "home_office", "food", "supplies"),
    "Target": ("home_office", "office_supplies", "supplies"),
    "Best Buy": ("office_supplies", "hardware", "computer_equipment"),
    "Staples": ("office_supplies", "supplies", "computer_equipment"),
}
# Descriptions that name no category: card descriptors and bookkeeping shorthand.
GENERIC_DESCRIPTIONS: tuple[str, ...] = (
    "Online Purchase", "Card Purchase", "POS Debit", "Purchase", "Misc Expense", "Order Payment",
)
CITIES: tuple[tuple[str, str], ...] = (
    ("SEATTLE", "WA"), ("AUSTIN", "TX"), ("DENVER", "CO"), ("OAKLAND", "CA"), ("BOSTON", "MA"), ("CHICAGO", "IL"),
)

# Suppliers that open during the generated span (titans.data.small_accounts): merchants no account
# knew at the start, adopted over time by the businesses of their segments. Why names of their
# own: a recommender must be able to surface a merchant that is new to everyone, which the
# catalogue's long-standing merchants never are.
NEW_SUPPLIERS: tuple[tuple[str, str], ...] = (
    ("Northwind Traders", "office_supplies"), ("Bluepeak Fuel", "fuel"), ("Cobalt Cloud", "software"),
    ("Harbor Coffee Roasters", "meals_entertainment"), ("Lumen Telecom", "telephone"),
    ("Atlas Tool Hire", "hardware"), ("Pinecrest Print", "supplies"), ("Vertex Learning", "training"),
    ("Quill and Co", "office_supplies"), ("Redwood IT Rentals", "computer_equipment"),
    ("Summit Auto Care", "vehicle_expenses"), ("Greenleaf Catering", "food"),
)
