"""Mail on a mail host: each user's Maildir store, durable delivery, the host's
mail domains, and the sample mailbox a new store gets.

The SMTP, POP3 and IMAP services of a host share one store, in the host's
own data directory (kept across ``down``, removed by ``down --purge``).
"""

from netplay.mail._domains import mail_domains
from netplay.mail._maildir import MAIL_DIR, Maildir, MailStore
from netplay.mail._sample import sample_messages

__all__ = ["MAIL_DIR", "MailStore", "Maildir", "mail_domains", "sample_messages"]
