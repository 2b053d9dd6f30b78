\echo Use "CREATE EXTENSION netbuf_bench" to load this file. \quit

-- kind: netbuf | netbuf_seed | libpq | libpq_seed | select.  Per batch of
-- depth messages, the round-trip time / depth in microseconds; server_cpu_us
-- is the serving backend's CPU time (NULL when its pid is not known).
CREATE FUNCTION @extschema@.run(kind text, conninfo text, payload int4, iterations int4,
                                depth int4, OUT lat_us float8[], OUT wall_us float8,
                                OUT server_cpu_us float8)
  RETURNS record LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'netbuf_bench_run';

-- kind: netbuf (netbuf_connect + netbuf_disconnect) | bare (PQconnectdb +
-- SELECT 1 + PQfinish).  Each connection's time in microseconds.
CREATE FUNCTION @extschema@.connect(kind text, conninfo text, n int4)
  RETURNS float8[] LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'netbuf_bench_connect';
