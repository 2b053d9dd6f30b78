/*-------------------------------------------------------------------------
 *
 * errors.c
 *	  ereport an error the Rust core described.
 *
 * Rust never calls the backend (an ERROR's longjmp must not cross a Rust
 * frame): on failure it fills an NbError (boundary.h) and returns, and the
 * C caller raises it here, after every Rust frame is gone.
 *
 * IDENTIFICATION
 *	  c_shim/common/errors.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

void
netbuf_raise(const NbError *err)
{
	const char *s = err->sqlstate;
	int			sqlerrcode = ERRCODE_INTERNAL_ERROR;

	if (strlen(s) == 5)
		sqlerrcode = MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);

	ereport(ERROR,
			(errcode(sqlerrcode),
			 errmsg_internal("%s", err->message),
			 err->detail[0] ? errdetail_internal("%s", err->detail) : 0,
			 err->hint[0] ? errhint("%s", err->hint) : 0,
			 err->context[0] ? errcontext("%s", err->context) : 0));
	pg_unreachable();
}
