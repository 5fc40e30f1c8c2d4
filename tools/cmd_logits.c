/* cmd_logits.c — placeholder: not implemented yet. */
#include "cli.h"

int phiq_cmd_logits(int argc, char **argv) { (void)argc; (void)argv; return phiq_cli_fail("logits", "not implemented yet"); }
