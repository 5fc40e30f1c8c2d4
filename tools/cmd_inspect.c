/* cmd_inspect.c — placeholder: not implemented yet. */
#include "cli.h"

int phiq_cmd_inspect(int argc, char **argv) { (void)argc; (void)argv; return phiq_cli_fail("inspect", "not implemented yet"); }
