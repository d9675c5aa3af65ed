"""Email in and out: SMTP sending, IMAP and SMTP-listener receiving, the local maildir, and
the MS365 XOAUTH2 token both ends use."""
