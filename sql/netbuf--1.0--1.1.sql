/* sql/netbuf--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION netbuf UPDATE TO '1.1'" to load this file. \quit

-- Version 1.1: netbuf from SQL.  CREATE EXTENSION netbuf runs
-- netbuf--1.0.sql and then this script (there is no netbuf--1.1.sql), so a
-- new installation and an updated one end up with the same objects.

------------------------------------------------------------------------
-- The standby side: requests from SQL over cached session channels
------------------------------------------------------------------------

------------------------------------------------------------------------
-- The primary side: SQL handlers, the serving view
------------------------------------------------------------------------
