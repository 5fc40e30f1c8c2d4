/* cmd_synth.c — placeholder: not implemented yet. */
#include "cli.h"

int phiq_cmd_synth(int argc, char **argv) { (void)argc; (void)argv; return phiq_cli_fail("synth", "not implemented yet"); }
