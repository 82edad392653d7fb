// The agent console (see index.html).
