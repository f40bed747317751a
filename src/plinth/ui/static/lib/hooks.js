// Loading data for a page: {data, error, loading, reload}, refetched when `deps` change.
import { useCallback, useEffect, useRef, useState } from "../vendor/standalone.module.js";

export function useApi(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true, key: null });
  const serial = useRef(0);
  const key = JSON.stringify(deps);
  const run = useCallback(() => {
    const mine = ++serial.current;
    setState((s) => ({ ...s, loading: true }));
    Promise.resolve()
      .then(load)
      .then(
        (data) => { if (mine === serial.current) setState({ data, error: null, loading: false, key }); },
        (error) => { if (mine === serial.current) setState({ data: null, error, loading: false, key }); },
      );
  }, deps);
  useEffect(run, [run]);
  // until the answer for these deps is in, the page is loading (not ready with the last answer)
  return { data: state.data, error: state.error, loading: state.loading || state.key !== key, reload: run };
}

// Calls `fn` every `ms` while the page shows (for live statuses); stops when unmounted.
export function useInterval(fn, ms) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!ms) return undefined;
    const id = setInterval(() => saved.current(), ms);
    return () => clearInterval(id);
  }, [ms]);
}
