--
-- netbuf's settings: defaults, bounds, who may set them
--
-- Out-of-range values are refused; the text of core's messages differs
-- between PostgreSQL majors, so those errors show their SQLSTATE alone.

-- The settings exist once libnetbuf is loaded (netbuf_connect and
-- CALL netbuf.serve() load it).
LOAD 'libnetbuf';
SELECT name, setting, unit, boot_val, min_val, max_val, vartype, context
  FROM pg_settings WHERE name LIKE 'netbuf.%' ORDER BY name;
SELECT enumvals FROM pg_settings WHERE name = 'netbuf.debug_panic_at';
SHOW netbuf.max_message_size;
SHOW netbuf.peer_timeout;
SHOW netbuf.debug_panic_at;

\set VERBOSITY sqlstate

-- netbuf.max_message_size: 16 bytes to 1 GB - 2 (PostgreSQL's largest
-- message).
SET netbuf.max_message_size = 15;
SET netbuf.max_message_size = 16;
SHOW netbuf.max_message_size;
SET netbuf.max_message_size = 1073741822;
SHOW netbuf.max_message_size;
SET netbuf.max_message_size = '1GB';
SET netbuf.max_message_size = '1kB';
SHOW netbuf.max_message_size;
RESET netbuf.max_message_size;

-- netbuf.peer_timeout: 0 (the server's TCP settings) to INT_MAX / 1000 ms.
SET netbuf.peer_timeout = -1;
SET netbuf.peer_timeout = 0;
SHOW netbuf.peer_timeout;
SET netbuf.peer_timeout = 2147483;
SHOW netbuf.peer_timeout;
SET netbuf.peer_timeout = 2147484;
SET netbuf.peer_timeout = '1h';
SET netbuf.peer_timeout = '5s';
SHOW netbuf.peer_timeout;
RESET netbuf.peer_timeout;

-- netbuf.debug_panic_at: one of the panic points named above.
SET netbuf.debug_panic_at = 'nowhere';
SET netbuf.debug_panic_at = 'serve';
SHOW netbuf.debug_panic_at;
RESET netbuf.debug_panic_at;

-- Superuser settings: a plain role may not change them.
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_netbuf_plain;
RESET client_min_messages;
CREATE ROLE regress_netbuf_plain;
SET ROLE regress_netbuf_plain;
SET netbuf.max_message_size = '1MB';
SET netbuf.peer_timeout = '1s';
SET netbuf.debug_panic_at = 'serve';
SHOW netbuf.max_message_size;
RESET ROLE;
DROP ROLE regress_netbuf_plain;
