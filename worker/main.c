/*
 * herd-worker: one server of the herd. Parses the command line and hands
 * over to worker_run(). Exit status: 0 after a graceful stop, 1 on a runtime
 * failure (port taken...), 2 on a usage or configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "version.h"
#include "worker.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: herd-worker -c FILE [--config-fd FD] [--channel FD] [--log-stderr] NAME\n"
               "Runs the server NAME of the herd described in FILE.\n\n"
               "  -c, --config FILE   the herd's INI file\n"
               "      --config-fd FD  read the file's text from FD instead (FILE names it)\n"
               "      --channel FD    report to herd-supervisor on this fd\n"
               "      --log-stderr    copy log lines to stderr\n"
               "  -h, --help          this text\n"
               "      --version       print the version\n\n"
               "Exit status: 0 stopped, 1 runtime failure, 2 usage or configuration error.\n");
}

static int parse_fd(const char *s, int *fd)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > INT_MAX)
        return -1;
    *fd = (int)v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct worker_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"channel", required_argument, NULL, 'C'},
        {"config-fd", required_argument, NULL, 'F'},
        {"log-stderr", no_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct worker_opts){.channel_fd = -1, .config_fd = -1};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'C':
            if (parse_fd(optarg, &o->channel_fd) < 0) {
                fprintf(stderr, "herd-worker: bad --channel: %s\n", optarg);
                return -1;
            }
            break;
        case 'F':
            if (parse_fd(optarg, &o->config_fd) < 0) {
                fprintf(stderr, "herd-worker: bad --config-fd: %s\n", optarg);
                return -1;
            }
            break;
        case 'e': o->log_stderr = 1; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("herd-worker %s\n", herd_version); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (o->config == NULL || optind != argc - 1) {
        usage(stderr);
        return -1;
    }
    o->name = argv[optind];
    return 0;
}

int main(int argc, char **argv)
{
    struct worker_opts o;
    if (parse_opts(argc, argv, &o) < 0)
        return 2;
    return worker_run(&o);
}
