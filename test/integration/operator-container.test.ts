import { operatorSuite } from './operator-suite.js';

operatorSuite('container');
