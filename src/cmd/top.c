// SPDX-License-Identifier: MIT
#include "cmd/cmds.h"

int cmd_top(int argc, char **argv)
{
	return cmd_fail("top: not implemented yet");
}
