"""Mail on a mail host: each user's Maildir store, durable delivery, the host's
mail domains, the sample mailbox a new store gets, and the queue of mail for
other domains with its delivery over SMTP and its bounces.

The SMTP, POP3 and IMAP services of a host share one store, in the host's
own data directory (kept across ``down``, removed by ``down --purge``).
"""

from netplay.mail._domains import mail_domains
from netplay.mail._index import (
    FLAG_LETTERS,
    MAX_KEYWORD_LENGTH,
    Folder,
    Stored,
    TooManyKeywords,
    base_name,
    is_keyword,
    read_keywords,
)
from netplay.mail._maildir import MAIL_DIR, Maildir, MailStore
from netplay.mail._queue import QUEUE_DIR, Queue, Queued
from netplay.mail._relay import Failure, bounce, deliver, exchanges
from netplay.mail._sample import sample_messages

__all__ = [
    "FLAG_LETTERS",
    "MAIL_DIR",
    "MAX_KEYWORD_LENGTH",
    "QUEUE_DIR",
    "Failure",
    "Folder",
    "MailStore",
    "Maildir",
    "Queue",
    "Queued",
    "Stored",
    "TooManyKeywords",
    "base_name",
    "bounce",
    "deliver",
    "exchanges",
    "is_keyword",
    "mail_domains",
    "read_keywords",
    "sample_messages",
]
