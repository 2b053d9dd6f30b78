/*-------------------------------------------------------------------------
 *
 * rust_core.c
 *	  The Rust core's function table, as the C files reach it.
 *
 * The Rust half of libnetbuf.so (src/) exports no symbol the C files could
 * call: PostgreSQL loads modules RTLD_GLOBAL, so an exported name could be
 * interposed by another module's.  It hands its NbRustApi table (boundary.h)
 * to netbuf_shim_init instead, which stores it here before anything else
 * runs.  A file of its own so that every C file can depend on it without
 * depending on module.c.
 *
 * IDENTIFICATION
 *	  c_shim/common/rust_core.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

const NbRustApi *nb_rust = NULL;
