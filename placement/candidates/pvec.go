package candidates

// pvec is a persistent vector: fixed-size pages behind a directory, so a new
// version that changes a few elements copies only their pages and the
// directory (a few KB at 100,000 elements) and shares everything else with
// the version it came from. Versions never change once published.
type pvec[T any] struct {
	pages []*[pageSize]T
	n     int32
}

const (
	pageBits = 8
	pageSize = 1 << pageBits
	pageMask = pageSize - 1
)

func (v *pvec[T]) at(i int32) T { return v.pages[i>>pageBits][i&pageMask] }

// pvecWriter builds the next version of a pvec. Pages it has copied are its
// own and are changed in place until the version is taken.
type pvecWriter[T any] struct {
	v      pvec[T]
	dirOwn bool
	own    map[int32]bool
}

func newPvecWriter[T any](v pvec[T]) *pvecWriter[T] {
	return &pvecWriter[T]{v: v, own: map[int32]bool{}}
}

func (w *pvecWriter[T]) at(i int32) T { return w.v.at(i) }

func (w *pvecWriter[T]) ownDir() {
	if !w.dirOwn {
		w.v.pages = append(make([]*[pageSize]T, 0, len(w.v.pages)+1), w.v.pages...)
		w.dirOwn = true
	}
}

func (w *pvecWriter[T]) set(i int32, x T) {
	pg := i >> pageBits
	if !w.own[pg] {
		w.ownDir()
		cp := *w.v.pages[pg]
		w.v.pages[pg] = &cp
		w.own[pg] = true
	}
	w.v.pages[pg][i&pageMask] = x
}

// push appends x and returns its index.
func (w *pvecWriter[T]) push(x T) int32 {
	i := w.v.n
	if i&pageMask == 0 {
		w.ownDir()
		w.v.pages = append(w.v.pages, new([pageSize]T))
		w.own[i>>pageBits] = true
	}
	w.v.n++
	w.set(i, x)
	return i
}

// grow extends the vector with zero values up to n elements.
func (w *pvecWriter[T]) grow(n int32) {
	var zero T
	for w.v.n < n {
		w.push(zero)
	}
}

func (w *pvecWriter[T]) done() pvec[T] {
	v := w.v
	w.dirOwn, w.own = false, map[int32]bool{}
	return v
}
