/* kvmlab-pages: a guest program whose memory the host can find.
 *
 * It maps a buffer of PAGES pages, writes "KVMLAB-PAGE-<n>" at the start of page n,
 * locks it in memory, and prints, for every page, its virtual address and the
 * physical frame the guest kernel gave it (from /proc/self/pagemap; readable as root).
 * Then it prints KVMLAB-MEM-READY and spins on the buffer for ever, so that when the
 * host pauses the guest, this process is the one running on the vCPU (its CR3 is the
 * vCPU's CR3).
 *
 * Usage: kvmlab-pages [PAGES]
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL

int main(int argc, char **argv)
{
    long pages = argc > 1 ? atol(argv[1]) : 64;
    if (pages < 1 || pages > 65536) {
        fprintf(stderr, "kvmlab-pages: PAGES must be 1-65536\n");
        return 2;
    }
    volatile unsigned char *buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (buf == MAP_FAILED) {
        perror("kvmlab-pages: mmap");
        return 1;
    }
    for (long p = 0; p < pages; p++)
        snprintf((char *)buf + p * PAGE, 32, "KVMLAB-PAGE-%06ld", p);
    if (mlock((void *)buf, pages * PAGE) != 0)
        perror("kvmlab-pages: mlock");

    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) {
        perror("kvmlab-pages: /proc/self/pagemap");
        return 1;
    }
    printf("pid=%d\nbuffer=0x%lx\npages=%ld\n", getpid(), (unsigned long)buf, pages);
    for (long p = 0; p < pages; p++) {
        uint64_t va = (uint64_t)(uintptr_t)buf + p * PAGE, entry = 0;
        if (pread(fd, &entry, 8, (off_t)(va / PAGE * 8)) != 8)
            entry = 0;
        printf("page %ld va=0x%llx present=%d pfn=0x%llx\n", p, (unsigned long long)va,
               (int)(entry >> 63), (unsigned long long)(entry & ((1ULL << 55) - 1)));
    }
    printf("KVMLAB-MEM-READY\n");
    fflush(stdout);
    close(fd);
    for (unsigned long i = 0;; i++)
        buf[(i * 64 + 48) % (pages * PAGE)]++;   /* never the pattern at a page start */
}
