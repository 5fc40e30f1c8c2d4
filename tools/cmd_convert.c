/* cmd_convert.c — placeholder: not implemented yet. */
#include "cli.h"

int phiq_cmd_convert(int argc, char **argv) { (void)argc; (void)argv; return phiq_cli_fail("convert", "not implemented yet"); }
