// SPDX-License-Identifier: MIT
/* gotrace heap: in-use and allocated memory by allocation site, GC cycles (issue 4). */
#include "cmd/cmds.h"

int cmd_heap(int argc, char **argv)
{
	return cmd_fail("heap: not implemented yet");
}
