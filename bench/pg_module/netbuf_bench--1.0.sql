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

-- The SQL-path rows: what a request from SQL on the standby costs.
-- An op answered by a SQL function: the bench primary registers it as 'H'.
CREATE FUNCTION @extschema@.echo_sql(payload bytea) RETURNS bytea
  LANGUAGE sql AS 'SELECT payload';

-- kind: netbuf (netbuf.request('E', ...)) | handler (netbuf.request('H', ...),
-- answered by echo_sql) | transaction (netbuf.request('T', ...), answered by
-- this module's C echo in a transaction per request, when the primary
-- preloads it) | dblink (a statement prepared once over dblink,
-- EXECUTEd per call).  Each call's time in microseconds, after a warm-up of
-- 10 calls that also opens the connection; every reply is checked.
CREATE FUNCTION @extschema@.sql_path(kind text, conninfo text, payload int4, iterations int4)
  RETURNS float8[] LANGUAGE plpgsql AS $$
DECLARE
  p bytea := pg_catalog.convert_to(pg_catalog.repeat('x', payload), 'UTF8');
  want bytea := p;
  lat float8[] := '{}';
  q text;
  r bytea;
  t0 timestamptz;
BEGIN
  IF kind = 'netbuf' THEN
    want := '\x45'::bytea || p;             -- 'E' || payload
  ELSIF kind = 'transaction' THEN
    want := '\x54'::bytea || p;             -- 'T' || payload
  ELSIF kind = 'dblink' THEN
    PERFORM public.dblink_connect('netbuf_bench', conninfo);
    PERFORM public.dblink_exec('netbuf_bench', 'PREPARE p(bytea) AS SELECT $1::bytea');
    q := pg_catalog.format('EXECUTE p(%L::bytea)', p::text);
  ELSIF kind <> 'handler' THEN
    RAISE EXCEPTION 'netbuf_bench: unknown kind "%"', kind;
  END IF;
  FOR i IN 1 .. iterations + 10 LOOP
    t0 := pg_catalog.clock_timestamp();
    IF kind = 'netbuf' THEN
      r := netbuf.request('E', p, conninfo);
    ELSIF kind = 'handler' THEN
      r := netbuf.request('H', p, conninfo);
    ELSIF kind = 'transaction' THEN
      r := netbuf.request('T', p, conninfo);
    ELSE
      SELECT b INTO r FROM public.dblink('netbuf_bench', q) AS t(b bytea);
    END IF;
    IF i > 10 THEN
      lat := pg_catalog.array_append(lat,
        pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - t0) * 1e6);
    END IF;
    IF r IS DISTINCT FROM want THEN
      RAISE EXCEPTION 'netbuf_bench: % reply of % bytes, expected %', kind,
        pg_catalog.length(r), pg_catalog.length(want);
    END IF;
  END LOOP;
  IF kind = 'dblink' THEN
    PERFORM public.dblink_disconnect('netbuf_bench');
  ELSE
    PERFORM netbuf.disconnect(conninfo);
  END IF;
  RETURN lat;
END $$;
