/* kvmlab-ksm: give the kernel's same-page merging (KSM) pages to merge, and watch it.
 *
 * Maps PAGES pages; page i holds content number i % DISTINCT (the same bytes in every
 * page of that number, never all zeros); marks them MADV_MERGEABLE; sets KSM's
 * pages_to_scan and sleep_millisecs, starts it, and prints KSM's counters whenever they
 * change, with the milliseconds since the start, for DURATION_MS:
 *
 *   ksm t_ms=<ms> full_scans=<n> pages_shared=<n> pages_sharing=<n>
 *
 * Usage: kvmlab-ksm PAGES DISTINCT PAGES_TO_SCAN SLEEP_MS DURATION_MS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define KSM "/sys/kernel/mm/ksm/"

static long read_counter(const char *name)
{
    char path[128];
    long value = -1;
    snprintf(path, sizeof path, KSM "%s", name);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%ld", &value) != 1)
            value = -1;
        fclose(f);
    }
    return value;
}

static int write_setting(const char *name, long value)
{
    char path[128];
    snprintf(path, sizeof path, KSM "%s", name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "%ld\n", value);
    return fclose(f);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: kvmlab-ksm PAGES DISTINCT PAGES_TO_SCAN SLEEP_MS DURATION_MS\n");
        return 2;
    }
    long pages = atol(argv[1]), distinct = atol(argv[2]), to_scan = atol(argv[3]);
    long sleep_ms = atol(argv[4]), duration_ms = atol(argv[5]);
    if (pages < 1 || distinct < 1 || distinct > pages || to_scan < 1 || sleep_ms < 0) {
        fprintf(stderr, "kvmlab-ksm: need 1 <= DISTINCT <= PAGES, PAGES_TO_SCAN >= 1\n");
        return 2;
    }
    unsigned char *buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        perror("kvmlab-ksm: mmap");
        return 1;
    }
    for (long i = 0; i < pages; i++) {
        long content = i % distinct;
        unsigned char *p = buf + i * PAGE;
        for (unsigned long b = 0; b < PAGE; b++)
            p[b] = (unsigned char)(content * 131 + b * 7 + 1);
        snprintf((char *)p, 32, "KVMLAB-CONTENT-%06ld", content);
    }
    if (write_setting("run", 0) || write_setting("pages_to_scan", to_scan) ||
        write_setting("sleep_millisecs", sleep_ms))
        return 1;
    if (madvise(buf, pages * PAGE, MADV_MERGEABLE) != 0) {
        perror("kvmlab-ksm: madvise(MADV_MERGEABLE)");
        return 1;
    }
    long last[3] = {-2, -2, -2};
    double start = now_ms();
    if (write_setting("run", 1))
        return 1;
    printf("ksm-started pages=%ld distinct=%ld pages_to_scan=%ld sleep_ms=%ld\n", pages,
           distinct, to_scan, sleep_ms);
    for (;;) {
        double t = now_ms() - start;
        long now[3] = {read_counter("full_scans"), read_counter("pages_shared"),
                       read_counter("pages_sharing")};
        if (memcmp(now, last, sizeof now) != 0) {
            printf("ksm t_ms=%.1f full_scans=%ld pages_shared=%ld pages_sharing=%ld\n", t,
                   now[0], now[1], now[2]);
            fflush(stdout);
            memcpy(last, now, sizeof now);
        }
        if (t > duration_ms)
            break;
        usleep(2000);
    }
    write_setting("run", 0);
    printf("ksm-done\n");
    return 0;
}
