"""Value pools for generated records: deliberately multilingual (accents, CJK, RTL, emoji)."""

from __future__ import annotations

from .constants import MESSAGE_BODY_MARKER as MARKER

# (display, ascii) pairs so names can be unicode while e-mail local parts stay plausible.
FIRST_NAMES: tuple[tuple[str, str], ...] = (
    ("José", "jose"), ("Zoë", "zoe"), ("Søren", "soren"), ("Ana", "ana"), ("Łukasz", "lukasz"),
    ("Ngọc", "ngoc"), ("伟", "wei"), ("محمد", "mohammed"), ("Ólafur", "olafur"), ("Chloé", "chloe"),
    ("Dmitri", "dmitri"), ("Aarav", "aarav"), ("Siobhán", "siobhan"), ("Émilie", "emilie"),
    ("健二", "kenji"), ("Fatima", "fatima"), ("Noa", "noa"), ("Björk", "bjork"), ("Mateus", "mateus"),
    ("Priya", "priya"), ("Grace", "grace"), ("Oluwaseun", "oluwaseun"), ("Anaïs", "anais"),
    ("Şebnem", "sebnem"), ("Jürgen", "jurgen"), ("Mia", "mia"), ("Liam", "liam"), ("Sofía", "sofia"),
    ("Hannah", "hannah"), ("Nguyễn", "nguyen"), ("Mẫn", "man"), ("יעל", "yael"), ("Ренат", "renat"),
    ("Aiyana", "aiyana"), ("Tāne", "tane"), ("Kwame", "kwame"), ("Ingrid", "ingrid"), ("Paulo", "paulo"),
    ("Zeynep", "zeynep"), ("Élodie", "elodie"),
)
LAST_NAMES: tuple[tuple[str, str], ...] = (
    ("García", "garcia"), ("Müller", "muller"), ("O'Brien", "obrien"), ("Nowak", "nowak"),
    ("Trần", "tran"), ("王", "wang"), ("الحسيني", "alhusseini"), ("Jónsson", "jonsson"),
    ("Dubois", "dubois"), ("Volkov", "volkov"), ("Sharma", "sharma"), ("Ní Bhriain", "nibhriain"),
    ("Lefèvre", "lefevre"), ("山田", "yamada"), ("Haddad", "haddad"), ("Cohen", "cohen"),
    ("Guðmundsdóttir", "gudmundsdottir"), ("Araújo", "araujo"), ("Iyer", "iyer"), ("Smith", "smith"),
    ("Adeyemi", "adeyemi"), ("Martin", "martin"), ("Yılmaz", "yilmaz"), ("Schäfer", "schafer"),
    ("Kowalski", "kowalski"), ("Rossi", "rossi"), ("Hernández", "hernandez"), ("Kim", "kim"),
    ("Van der Berg", "vanderberg"), ("Øverland", "overland"), ("Ngata", "ngata"), ("Mensah", "mensah"),
    ("Lindqvist", "lindqvist"), ("da Silva", "dasilva"), ("Öztürk", "ozturk"), ("Leroy", "leroy"),
)
NAME_DECORATIONS: tuple[str, ...] = ("", "", "", "", "", "", " 🦄", " ✨", " (she/her)", " 🇮🇪", " — VIP")
RTL_FULL_NAMES: tuple[str, ...] = ("مريم الحسيني", "יעל כהן", "علی رضایی", "نور الهدى")
CJK_FULL_NAMES: tuple[str, ...] = ("山田 太郎", "王伟", "김민준", "渡辺 健二")

PUBLIC_EMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "outlook.com", "yahoo.co.jp", "proton.me", "web.de", "icloud.com", "hotmail.co.uk",
    "orange.fr", "bigpond.com", "gmx.at",
)
COMPANY_EMAIL_DOMAINS: tuple[str, ...] = (
    "acme.io", "globex.co.uk", "initech.com.au", "umbrella-health.eu", "stark-industries.com",
    "wayne-enterprises.com", "münchen-logistik.de", "soylent.example", "hooli.xyz", "pied-piper.io",
)

PHONE_FORMATS: tuple[str, ...] = (
    "+1415555{n4}", "+1 (415) 555-{n4}", "+44 20 7946 {n4}", "+353 1 555 {n4}", "+61 2 9374 {n4}",
    "+49 30 901820{n2}", "+81 3-5555-{n4}", "+33 1 70 36 {n2} {n2b}",
)

LOCATIONS: tuple[tuple[str | None, str | None, str | None, str | None, str | None], ...] = (
    # country, region, city, country_code, continent_code
    ("United States", "California", "San Francisco", "USA", "NA"),
    ("United States", "New York", "New York", "USA", "NA"),
    ("Ireland", "Leinster", "Dublin", "IRL", "EU"),
    ("Germany", "Bayern", "München", "DEU", "EU"),
    ("Switzerland", "Zürich", "Zürich", "CHE", "EU"),
    ("Brazil", "São Paulo", "São Paulo", "BRA", "SA"),
    ("Japan", "東京都", "東京", "JPN", "AS"),
    ("Egypt", "Cairo Governorate", "القاهرة", "EGY", "AF"),
    ("Israel", "Tel Aviv District", "תל אביב", "ISR", "AS"),
    ("Australia", "New South Wales", "Sydney", "AUS", "OC"),
    ("New Zealand", "Auckland", "Auckland", "NZL", "OC"),
    ("Iceland", "Höfuðborgarsvæðið", "Reykjavík", "ISL", "EU"),
    ("France", "Île-de-France", "Paris", "FRA", "EU"),
    (None, None, None, None, None),
)

BROWSERS: tuple[tuple[str, str], ...] = (
    ("chrome", "131.0.6778.86"), ("firefox", "133.0"), ("safari", "18.1.1"), ("edge", "131.0.2903.70"),
)
OSES: tuple[str, ...] = ("OS X 14.6.1", "Windows 11", "Linux", "iOS 18.1", "Android 14")
LANGUAGES: tuple[str, ...] = ("en", "en-GB", "de", "fr", "ja", "ar", "he", "pt-BR", "es")

PLANS: tuple[str, ...] = ("free", "starter", "pro", "enterprise", "prö-legacy")
SIGNUP_SOURCES: tuple[str, ...] = ("web", "ios", "android", "partner-referral", "import")

CONTACT_NOTE_TEXTS: tuple[str, ...] = (
    f"Asked about invoice #4411 {MARKER}",
    f"Prefers contact in Deutsch 🇩🇪 {MARKER}",
    f"Escalated twice — see ticket {MARKER}",
    f"رقم الطلب ٥٥٢ {MARKER}",
)

CONVERSATION_SUBJECTS: tuple[str, ...] = (
    f"Refund for order #{{n}} — {MARKER}",
    f"Réinitialisation du mot de passe {MARKER}",
    f"Export my data (GDPR Art. 15) {MARKER}",
    f"アカウントの削除について {MARKER}",
    f"Security question about SSO 🔐 {MARKER}",
    f"مشكلة في الفاتورة {MARKER}",
    "",
)
CONVERSATION_BODIES: tuple[str, ...] = (
    f"<p>Hi, my card was charged twice for order #{{n}}. {MARKER}</p>",
    f"<p>Bonjour, je n'arrive plus à me connecter. {MARKER}</p><p>Merci !</p>",
    f"<p>Please send me a copy of all personal data you hold about me. {MARKER}</p>",
    f"<p>こんにちは、アカウントを削除したいです。{MARKER}</p>",
    f"<p>We think someone accessed our workspace 🚨 {MARKER}</p>",
    f"<p dir=\"rtl\">مرحبا، لدي سؤال عن الفاتورة {MARKER}</p>",
    f"<p>Can you call me on +1 415 555 0134? {MARKER}</p>",
)
CONVERSATION_TITLES: tuple[str | None, ...] = (
    None, None,
    f"Refund request ✨ {MARKER}",
    f"Datenauskunft / DSAR {MARKER}",
    f"Login issue — 2FA {MARKER}",
    f"طلب استرداد {MARKER}",
)
RATING_REMARKS: tuple[str, ...] = (
    f"Great help, thanks! 🙏 {MARKER}",
    f"Took far too long. {MARKER}",
    f"Très bien {MARKER}",
    f"最高でした {MARKER}",
)
AI_RATING_REMARKS: tuple[str, ...] = (
    f"The bot did not understand me {MARKER}",
    f"Fin solved it instantly {MARKER}",
)
PART_BODIES: tuple[str, ...] = (
    f"<p>Thanks for reaching out! Let me check that for you. {MARKER}</p>",
    f"<p>I've issued the refund; it can take 5–10 days. {MARKER}</p>",
    f"<p>Could you confirm the e-mail on the account? {MARKER}</p>",
    f"<p>Danke, das hat funktioniert 👍 {MARKER}</p>",
)
ATTACHMENT_NAMES: tuple[tuple[str, str], ...] = (
    (f"invoice-{MARKER}.pdf", "application/pdf"),
    (f"screenshot {MARKER} 🖼.png", "image/png"),
    (f"passport_scan_{MARKER}.jpg", "image/jpeg"),
)
CONVERSATION_SOURCE_TYPES: tuple[tuple[str, int], ...] = (
    ("conversation", 50), ("email", 25), ("push", 3), ("facebook", 3), ("instagram", 2),
    ("phone_call", 4), ("phone_switch", 1), ("sms", 4), ("twitter", 2), ("whatsapp", 6),
)
SLA_NAMES: tuple[str, ...] = ("First response 1h", "Enterprise 15 min", "Standard 24h")
AI_SOURCE_TITLES: tuple[str, ...] = ("Fin — Billing workflow", "Profile: Support bot", "Résolution auto")
AI_CONTENT_TITLES: tuple[str, ...] = ("How to reset your password", "Refund policy", "SSO setup guide")
CUSTOM_ISSUE_TYPES: tuple[str, ...] = ("Billing", "Bug", "Account access", "Datenschutz", "Other")

AWAY_STATUS_REASONS: tuple[str, ...] = ("☕ Lunch", "🏖 On holiday", "🤒 Sick", "In a meeting")
