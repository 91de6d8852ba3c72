package session

// queue is a FIFO of deliveries on a ring buffer that grows as needed and
// gives its memory back when it empties, so an idle session holds nothing.
type queue struct {
	buf  []Delivery
	head int
	n    int
}

func (q *queue) len() int { return q.n }

func (q *queue) push(d Delivery) {
	if q.n == len(q.buf) {
		size := 2 * len(q.buf)
		if size == 0 {
			size = 8
		}
		nb := make([]Delivery, size)
		q.copyTo(nb)
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = d
	q.n++
}

func (q *queue) peek() *Delivery { return &q.buf[q.head] }

func (q *queue) pop() Delivery {
	d := q.buf[q.head]
	q.buf[q.head] = Delivery{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if q.n == 0 {
		q.head = 0
		if len(q.buf) > 64 {
			q.buf = nil
		}
	}
	return d
}

func (q *queue) copyTo(dst []Delivery) {
	for i := 0; i < q.n; i++ {
		dst[i] = q.buf[(q.head+i)%len(q.buf)]
	}
}

func (q *queue) slice() []Delivery {
	out := make([]Delivery, q.n)
	q.copyTo(out)
	return out
}

// filter keeps the deliveries for which keep is true, in order, and returns
// the ones it removed.
func (q *queue) filter(keep func(*Delivery) bool) []Delivery {
	if q.n == 0 {
		return nil
	}
	all := q.slice()
	var removed []Delivery
	q.buf, q.head, q.n = nil, 0, 0
	for i := range all {
		if keep(&all[i]) {
			q.push(all[i])
		} else {
			removed = append(removed, all[i])
		}
	}
	return removed
}
