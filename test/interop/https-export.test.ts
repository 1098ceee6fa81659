// The same HTTPS suite with the session exported to the host after the handshake (TLS-Tandem).
import { httpsSuite } from './https-suite.js';

httpsSuite('host');
