\echo Use "CREATE EXTENSION netbuf_test" to load this file. \quit

CREATE FUNCTION @extschema@.exchange_n(conninfo text, vals int4[]) RETURNS int4[]
  LANGUAGE C AS 'MODULE_PATHNAME', 'netbuf_test_exchange_n';
CREATE FUNCTION @extschema@.request(conninfo text, message bytea) RETURNS bytea
  LANGUAGE C AS 'MODULE_PATHNAME', 'netbuf_test_request';
CREATE FUNCTION @extschema@.session_request(message bytea) RETURNS bytea
  LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'netbuf_test_session_request';
CREATE FUNCTION @extschema@.misuse(what text) RETURNS void
  LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'netbuf_test_misuse';
CREATE FUNCTION @extschema@.send_all(conninfo text, messages bytea[]) RETURNS void
  LANGUAGE C AS 'MODULE_PATHNAME', 'netbuf_test_send_all';
CREATE FUNCTION @extschema@.pipeline(conninfo text, count int4, depth int4) RETURNS int8
  LANGUAGE C AS 'MODULE_PATHNAME', 'netbuf_test_pipeline';
CREATE FUNCTION @extschema@.hold(conninfo text, ms int4) RETURNS void
  LANGUAGE C AS 'MODULE_PATHNAME', 'netbuf_test_hold';
CREATE FUNCTION @extschema@.session_connect(conninfo text) RETURNS void
  LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'netbuf_test_session_connect';
CREATE FUNCTION @extschema@.session_send(message bytea) RETURNS void
  LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'netbuf_test_session_send';
CREATE FUNCTION @extschema@.session_queue(messages bytea[]) RETURNS void
  LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'netbuf_test_session_queue';
CREATE FUNCTION @extschema@.session_recv() RETURNS bytea
  LANGUAGE C AS 'MODULE_PATHNAME', 'netbuf_test_session_recv';
CREATE FUNCTION @extschema@.session_disconnect() RETURNS void
  LANGUAGE C AS 'MODULE_PATHNAME', 'netbuf_test_session_disconnect';
CREATE FUNCTION @extschema@.leak(conninfo text) RETURNS void
  LANGUAGE C AS 'MODULE_PATHNAME', 'netbuf_test_leak';
CREATE FUNCTION @extschema@.session_forward_last() RETURNS bytea
  LANGUAGE C AS 'MODULE_PATHNAME', 'netbuf_test_session_forward_last';
