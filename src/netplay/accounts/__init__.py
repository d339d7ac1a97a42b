"""The playground's accounts as the services that log users in see them.

The topology declares users (:class:`netplay.topology.User`) with their
passwords in clear, as a teaching playground's demo account is; what a
service keeps is a salted scrypt hash of each (:class:`Accounts`), in the
host's own data directory, and it checks a password against that in
constant time.  SMTP AUTH, POP3 and IMAP use it; FTP, SSH and Telnet will.
"""

from netplay.accounts._accounts import ACCOUNTS_FILE, Accounts, hash_password, verify

__all__ = ["ACCOUNTS_FILE", "Accounts", "hash_password", "verify"]
