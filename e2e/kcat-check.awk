# Checks what `kcat -C -f '%k %s %p %o\n'` read back from e2e/kcat.sh's producer: key
# "k" (value % k), values 0..n-1 each exactly once, ascending per key, each key in one
# partition, and per partition offsets dense in read order. Prints a one-line summary;
# exits 1 (after naming the first problems) on any failure.
#   awk -v n=MESSAGES -v k=KEYS -f kcat-check.awk read.txt
{
  key = $1; seq = $2 + 0; p = $3; off = $4 + 0; lines++
  if (NF != 4 || $2 !~ /^[0-9]+$/) { print "malformed line " NR ": " $0; bad = 1 }
  if (key != "k" (seq % k)) { print "value " seq " read with key " key; bad = 1 }
  if (seq in seen) { print "value " seq " read twice"; bad = 1 }
  seen[seq] = 1
  if (key in last && seq <= last[key]) { print "key " key ": " seq " read after " last[key]; bad = 1 }
  last[key] = seq
  if (key in part && part[key] != p) { print "key " key " in partitions " part[key] " and " p; bad = 1 }
  part[key] = p
  if (off != next_off[p] + 0) { print "partition " p ": offset " off " where " next_off[p] + 0 " was due"; bad = 1 }
  next_off[p] = off + 1
  if (bad && ++errors > 10) exit 1
}
END {
  if (errors > 10) exit 1
  distinct = length(seen); nkeys = length(last); nparts = length(next_off)
  if (lines != n) { print "read " lines + 0 " messages, produced " n; bad = 1 }
  if (distinct != n) { print "read " distinct " distinct values of " n; bad = 1 }
  for (i = 0; i < n && bad == 0; i++) if (!(i in seen)) { print "value " i " never read"; bad = 1 }
  if (nkeys != k) { print "read " nkeys " keys of " k; bad = 1 }
  if (nparts < 2) { print "all keys landed in " nparts " partition(s)"; bad = 1 }
  printf "produced %d, read %d, distinct %d, keys %d, partitions %d", n, lines, distinct, nkeys, nparts
  exit bad
}
