/* cmd_run.c — placeholder: not implemented yet. */
#include "cli.h"

int phiq_cmd_run(int argc, char **argv) { (void)argc; (void)argv; return phiq_cli_fail("run", "not implemented yet"); }
int phiq_cmd_chat(int argc, char **argv) { (void)argc; (void)argv; return phiq_cli_fail("chat", "not implemented yet"); }
int phiq_cmd_tokenize(int argc, char **argv) { (void)argc; (void)argv; return phiq_cli_fail("tokenize", "not implemented yet"); }
