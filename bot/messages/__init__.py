"""What we say and how we read what people say: email MIME, Block Kit, inbound mail, the web
page's links and forms. Pure: no database, no network; services and handlers both use it."""
