/* cmd_eval.c — placeholder: not implemented yet. */
#include "cli.h"

int phiq_cmd_eval(int argc, char **argv) { (void)argc; (void)argv; return phiq_cli_fail("eval", "not implemented yet"); }
int phiq_cmd_bench(int argc, char **argv) { (void)argc; (void)argv; return phiq_cli_fail("bench", "not implemented yet"); }
int phiq_cmd_report(int argc, char **argv) { (void)argc; (void)argv; return phiq_cli_fail("report", "not implemented yet"); }
